"""Models: `architectures` (Keras config or source as text), `parameters` (every version, arrays in
content-addressed blobs) and `deployments` (the pointer to the version being served).

May import: documents/, payloads/, server/ (its `retry`, for saves that wait out an outage).
"""
