"""`tensorlab db fsck`: `fsck` removes what killed writers left and names what is damaged, across the stores.

May import: documents/, payloads/, models/, transfer/.
"""
