"""Cluster DNS served by the daemon: records built from Services, EndpointSlices, pods and Nodes
(`records`), the resolver that turns a query into a response (`resolver`), forwarding of other
names to the host's upstreams (`forward`, with `cache`), the UDP/TCP server (`server`), metrics on
the kube-dns metrics port (`metrics`), the kube-dns objects (`bootstrap`) and the wiring to the
shared informers (`service`)."""
