"""Outbound partner clients (zeep) behind one small port each, with fake twins for tests."""
