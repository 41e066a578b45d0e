"""The policy layer (torch): the transformer policy and its observation / action adapters."""
