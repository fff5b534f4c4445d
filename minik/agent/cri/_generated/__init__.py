"""Generated CRI v1 stubs (scripts/gen-proto.sh from proto/cri/v1/api.proto). Do not edit."""
