"""Binary payloads: arrays encoded (`codec`), stored once by content (`blobstore`: GridFS or `payload_files`
beside the managed server) and the writes in flight (`pending_writes`) that let a killed writer's leftovers
be found.

May import: documents/, server/.
"""
