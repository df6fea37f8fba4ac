"""Domains as data: personas, topics and prompt templates (built in, or loaded from a user's JSON file)."""

from clickloop.domains.loader import BUILTIN_DOMAINS, Domain, PromptTemplate, load_domain

__all__ = ["BUILTIN_DOMAINS", "Domain", "PromptTemplate", "load_domain"]
