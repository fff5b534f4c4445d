"""The built-in ingress controller: a route table built from Ingress objects (`routes`), an
asyncio reverse proxy (`proxy`), TLS by SNI from Secrets (`tls`), and the controller that wires
them to the shared informers (`controller`). Started by `minik.daemon` unless `--disable ingress`."""
