"""Firecrawl API v2 requests read into ordinary job specs and crawl bodies, and results shaped back as Firecrawl
documents. Not web code: handlers/firecrawl/ serves it."""
