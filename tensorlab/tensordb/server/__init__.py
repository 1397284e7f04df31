"""Reaching a server: the managed local server, its FerretDB build, URIs, connections and what the server says.

`localserver` (start, stop, find the managed server), `ferretdb_build` (with the Go files in
`ferretdb_patches/`, read beside it), `payload_advert` (where the server keeps payload files), `connection`,
`uri`, `indexes` (every declared index), `private_files` (0700/0600 from creation on), `error_translation`
(server, network and disk failures as TensorLab errors) and `retry` (writes that wait out an outage).

May import: documents/. It imports no store: nothing of data/, logs/, models/, runs/, jobs/, transfer/,
integrity/ or payloads/.
"""
