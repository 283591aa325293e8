// @tenantgate/client: a typed client of tenantgate's REST (v1) and AuthZEN
// API. The types come from internal/gateway/openapi.yaml (npm run generate);
// the runtime is openapi-fetch.

export * from "./client.js";
export * from "./errors.js";
export type { components, paths, operations } from "./generated/schema.js";
