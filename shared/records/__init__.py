"""The vendors' record models (lenient pydantic), beside core: HaloPSA and ImmyBot as they answer."""
