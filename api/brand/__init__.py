"""The tenant's brand profile: voice, vocabulary, claims and personas, versioned."""
