// grpc-js-xds reads GRPC_XDS_EXPERIMENTAL_RBAC once, when it is first loaded, and only then registers its server-side
// RBAC filter. Import this module before anything that loads @grpc/grpc-js-xds. Without it a server Listener that
// carries RBAC filters is rejected (the filter is not optional), so the XdsServer never serves: it fails closed.
process.env.GRPC_XDS_EXPERIMENTAL_RBAC = 'true';

export {};
