"""Code shared by the sender-authentication layers (SPF, DKIM, DMARC, ARC): the offline Public
Suffix List and organisational domains (RFC 7489 section 3.2), identifier alignment, DNS
adapters for pyspf/dkimpy, exemptions, action rules and the DKIM signing key store."""
