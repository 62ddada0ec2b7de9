"""The Clearing House (DOMAIN.md section 4): roaming authorization, customer contracts, SDRs."""
