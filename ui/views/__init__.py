"""Page handlers, one module per area; ui.routes lists which URL runs which handler."""
