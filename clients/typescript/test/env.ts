// What the Go driver (clients/clients_test.go) hands the tests: a running
// gateway, a Cognito-style access token per user and the service token. A
// test run without them fails: it never passes by testing nothing.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { TenantgateClient, type TenantgateClientOptions } from "@tenantgate/client";

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
export const serviceToken = required("TENANTGATE_SERVICE_TOKEN");
const tokens = JSON.parse(required("TENANTGATE_TOKENS")) as Record<string, string>;

/** The token minted for user (or a special one such as "alice:expired"). */
export function token(user: string): string {
  const t = tokens[user];
  if (!t) throw new Error(`TENANTGATE_TOKENS has no token for ${user}`);
  return t;
}

/** A client of the real gateway with user's token. */
export function as(user: string, options: Partial<TenantgateClientOptions> = {}): TenantgateClient {
  return new TenantgateClient({ baseUrl: url, token: token(user), ...options });
}

/** A client of the real gateway with the service token. */
export function service(): TenantgateClient {
  return new TenantgateClient({ baseUrl: url, token: serviceToken });
}

/** A fresh ID, so that tests that write do not see each other's data. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Collects an async iterable. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** A URL where nothing listens: a port that was free a moment ago. */
export async function deadURL(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A local HTTP server answering with handler, for answers a real gateway never gives. */
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
