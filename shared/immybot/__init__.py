"""ImmyBot I/O: Entra tokens, the REST client, HaloPSA provider links."""
