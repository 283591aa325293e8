// What the Go driver (clients/clients_test.go) hands the tests: a running
// tenantgate, Cognito-style access tokens per user and the service token.
// Without them the tests fail: they never pass by testing nothing.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import type { AppSyncAuthorizerEvent } from "aws-lambda";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: these tests run against a real tenantgate serve that ` +
        "clients/clients_test.go starts (go test ./clients -run TestTypeScript -v)",
    );
  }
  return value;
}

export const url = required("TENANTGATE_URL");
export const clientID = required("TENANTGATE_COGNITO_CLIENT_ID");
const tokens = JSON.parse(required("TENANTGATE_TOKENS")) as Record<string, string>;

/** The Cognito-style access token minted for user (or a special one such as "alice:id-token"). */
export function token(user: string): string {
  const t = tokens[user];
  if (!t) throw new Error(`TENANTGATE_TOKENS has no token for ${user}`);
  return t;
}

let requests = 0;

/** The event AppSync hands a Lambda authorizer. */
export function appsyncEvent(
  authorizationToken: string,
  queryString: string,
  variables: Record<string, unknown> = {},
  extra: { operationName?: string; requestHeaders?: Record<string, string> } = {},
): AppSyncAuthorizerEvent {
  return {
    authorizationToken,
    requestContext: {
      apiId: "tenantgateexampleapi1234",
      accountId: "111122223333",
      requestId: `test-request-${++requests}`,
      queryString,
      ...(extra.operationName !== undefined ? { operationName: extra.operationName } : {}),
      variables,
    },
    requestHeaders: { "content-type": "application/json", ...extra.requestHeaders },
  };
}

/** A fresh ID, so that tests that write do not see each other's data. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A URL where nothing listens: a port that was free a moment ago. */
export async function deadURL(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A local HTTP server answering with handler. */
export async function fakeGateway(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
