// The Lambda entry point. Configure with environment variables:
//
//   TENANTGATE_URL            tenantgate's URL as the Lambda reaches it (required)
//   TENANTGATE_CACHE_TTL      seconds AppSync may cache an allow (default 0; see README)
//   TENANTGATE_TIMEOUT_MS     timeout of each tenantgate request (default 3000)
import { createAuthorizer } from "./authorizer.js";
import { rules } from "./rules.js";

export const handler = createAuthorizer({
  baseUrl: process.env.TENANTGATE_URL ?? "",
  rules,
  cacheTtlSeconds: Number(process.env.TENANTGATE_CACHE_TTL ?? "0") || 0,
  timeoutMs: Number(process.env.TENANTGATE_TIMEOUT_MS ?? "3000") || 3000,
});
