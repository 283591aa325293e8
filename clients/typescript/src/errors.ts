// Errors of the tenantgate client. Every failure is thrown: a call that did
// not get a well-formed success answer never returns, so no failure can be
// mistaken for an allow.

/** What went wrong, by the gateway's status (or "network" / "invalid_response" without one). */
export type ErrorKind =
  | "bad_request" // 400
  | "unauthorized" // 401: missing, malformed or rejected bearer token
  | "forbidden" // 403
  | "not_found" // 404
  | "conflict" // 409
  | "too_large" // 413
  | "unsupported_media_type" // 415
  | "server" // 500 and any other 5xx but 501 and 503
  | "not_implemented" // 501: no explainer
  | "unavailable" // 503: SpiceDB or Postgres cannot answer; retry after retryAfter seconds
  | "network" // no HTTP answer: refused, reset, DNS, timeout, aborted
  | "invalid_response" // an answer that is not what the contract says
  | "unexpected"; // any other status

/** The RFC 9457 problem document the gateway answers errors with. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  request_id?: string;
}

export interface TenantgateErrorInit {
  kind: ErrorKind;
  status: number;
  title: string;
  detail?: string | undefined;
  requestId?: string | undefined;
  type?: string | undefined;
  retryAfter?: number | undefined;
  method?: string | undefined;
  path?: string | undefined;
  cause?: unknown;
}

/**
 * A failed call. `status` is the HTTP status, or 0 when there was no answer
 * (kind "network"). `title`, `detail` and `requestId` come from the problem
 * document (`requestId` from the X-Request-Id header when the body has none):
 * the gateway's log line with the same request_id holds the cause.
 */
export class TenantgateError extends Error {
  readonly kind: ErrorKind;
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  readonly requestId: string | undefined;
  /** The problem's `type` URI, when it has one. */
  readonly type: string | undefined;
  /** Seconds from Retry-After (503), when sent. */
  readonly retryAfter: number | undefined;
  /** The request that failed, as "POST /v1/check". */
  readonly method: string | undefined;
  readonly path: string | undefined;

  constructor(init: TenantgateErrorInit) {
    const where = init.method && init.path ? `${init.method} ${init.path}: ` : "";
    const status = init.status ? `${init.status} ` : "";
    super(`tenantgate: ${where}${status}${init.title}${init.detail ? `: ${init.detail}` : ""}`, { cause: init.cause });
    this.name = new.target.name;
    this.kind = init.kind;
    this.status = init.status;
    this.title = init.title;
    this.detail = init.detail;
    this.requestId = init.requestId;
    this.type = init.type;
    this.retryAfter = init.retryAfter;
    this.method = init.method;
    this.path = init.path;
  }
}

/** 400: the request is malformed or breaks a documented rule. */
export class BadRequestError extends TenantgateError {}
/** 401: missing, malformed or rejected bearer token. */
export class UnauthorizedError extends TenantgateError {}
/** 403: not permitted (or a company the caller may not see). */
export class ForbiddenError extends TenantgateError {}
/** 404: an unknown membership or route. */
export class NotFoundError extends TenantgateError {}
/** 409: last owner, cycle, depth, existing ID. */
export class ConflictError extends TenantgateError {}
/** 503: a backend cannot answer now; see retryAfter. */
export class UnavailableError extends TenantgateError {}
/** No HTTP answer at all: connection refused or reset, DNS, timeout, abort. */
export class NetworkError extends TenantgateError {}
/** A 2xx answer that does not have the documented shape. */
export class InvalidResponseError extends TenantgateError {}

const kinds: Record<number, ErrorKind> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  415: "unsupported_media_type",
  500: "server",
  501: "not_implemented",
  503: "unavailable",
};

const classes: Partial<Record<ErrorKind, typeof TenantgateError>> = {
  bad_request: BadRequestError,
  unauthorized: UnauthorizedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  conflict: ConflictError,
  unavailable: UnavailableError,
};

function kindOf(status: number): ErrorKind {
  return kinds[status] ?? (status >= 500 ? "server" : "unexpected");
}

function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value.trim());
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** The error for a non-2xx answer, from its problem document when it has one. */
export function errorFromResponse(response: Response, body: unknown, method: string, path: string): TenantgateError {
  const problem: Problem = body !== null && typeof body === "object" ? (body as Problem) : {};
  const kind = kindOf(response.status);
  const Class = classes[kind] ?? TenantgateError;
  return new Class({
    kind,
    status: response.status,
    title: typeof problem.title === "string" && problem.title !== "" ? problem.title : response.statusText || `HTTP ${response.status}`,
    detail: typeof problem.detail === "string" ? problem.detail : undefined,
    requestId:
      typeof problem.request_id === "string" ? problem.request_id : (response.headers.get("X-Request-Id") ?? undefined),
    type: typeof problem.type === "string" ? problem.type : undefined,
    retryAfter: retryAfterSeconds(response.headers.get("Retry-After")),
    method,
    path,
  });
}
