"""HaloPSA I/O: tokens, transport, paging, the REST client, SQL report reads and their proof, assets."""
