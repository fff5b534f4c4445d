"""Generated minik cluster link stubs (scripts/gen-proto.sh from proto/minik/cluster.proto). Do not edit."""
