// The browser SDK of the connections service: a typed client generated from
// docs/openapi.json (openapi-typescript types, openapi-fetch calls) and the
// flows a frontend needs: connect (popup and message contract), reconnect,
// replace a key, upload a file with progress. Every failure is a
// ConnectionsError carrying the API's code, message and action.
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./api";

export type { components, paths };
type Schemas = components["schemas"];
export type Provider = Schemas["Provider"];
export type Connection = Schemas["Connection"];
export type Authorization = Schemas["Authorization"];
export type Notification = Schemas["Notification"];
export type Upload = Schemas["Upload"];
export type Status = Schemas["Status"];
export type ApiError = Schemas["Error"]["error"];
export type ConnectStart = Schemas["ConnectStart"];
export type Member = Schemas["Member"];
export type AlertKind = NonNullable<Member["email_opt_out"]>[number];
/** Every kind of alert email, in the order a preferences page lists them. */
export const ALERT_KINDS: { kind: AlertKind; label: string }[] = [
  { kind: "disconnected", label: "Disconnections" },
  { kind: "sync_failed", label: "Sync failures" },
  { kind: "data_not_syncing", label: "Stale data" },
  { kind: "expiring_soon", label: "Authorizations expiring soon" },
  { kind: "recovered", label: "Recoveries" },
];
export type Run = NonNullable<paths["/v1/connections/{id}/runs"]["get"]["responses"][200]["content"]["application/json"]["runs"]>[number];

/** Every failure of the SDK: the API's error, or one of the browser's own. */
export class ConnectionsError extends Error {
  /** Stable machine code: the API's (`invalid_state`, `api_key_invalid`, …) or the SDK's (`popup_blocked`, `popup_closed`, `timeout`, `network_error`). */
  readonly code: string;
  /** What the user can do about it. */
  readonly action: string;
  /** The HTTP status (0 when no answer came). */
  readonly status: number;
  /** The rest of the answer (an upload's row errors, for example). */
  readonly details: unknown;
  constructor(code: string, message: string, action: string, status = 0, details: unknown = undefined) {
    super(message);
    this.name = "ConnectionsError";
    this.code = code;
    this.action = action;
    this.status = status;
    this.details = details;
  }
}

export interface ConnectionsOptions {
  /** The API's origin and base path, e.g. `https://api.example.com`. */
  baseUrl: string;
  /** The user's bearer token, or a function that returns a fresh one. */
  token: string | (() => string | Promise<string>);
  /** How long a popup may stay open before connect() gives up (ms; default 10 minutes, the flow's own limit). */
  connectTimeoutMs?: number;
  fetch?: typeof globalThis.fetch;
}

export interface ConnectOptions {
  /** The data source's name (default: the platform's). */
  name?: string;
  /** The platform's connect-time parameters (a shop domain…), see Provider.params. */
  params?: Record<string, string>;
  client?: { id: string; name: string } | null;
  role?: "source" | "destination";
  /** Where the popup reports back; must be an allowed origin (default: this page). */
  returnTo?: string;
  /** Reconnect this connection or authorization instead of creating one. */
  reconnect?: { connection_id?: string; authorization_id?: string };
  signal?: AbortSignal;
}

export interface Connected {
  status: "connected";
  connection_id: string | null;
  authorization_id: string | null;
  /** `account_not_verified` when the platform does not say which account signed in. */
  warning?: string;
  warning_message?: string;
}

export interface UploadOptions {
  /** YYYY-MM: every row in that month; replaces the month's earlier upload. */
  period?: string;
  /** Import the valid rows of a file with row errors. */
  importValidRows?: boolean;
  /** Called as bytes go out: loaded and total. */
  onProgress?: (loaded: number, total: number) => void;
  /** A file over 5 MB is processed after it lands: how often to ask (ms; default 1000). */
  pollMs?: number;
  signal?: AbortSignal;
}

/** Files up to this size go in one request; larger ones through a presigned URL. */
export const DIRECT_UPLOAD_MAX = 5 * 1024 * 1024;

const POPUP_FEATURES = "popup,width=560,height=720";

function errorOf(status: number, body: unknown): ConnectionsError {
  const e = (body as { error?: ApiError } | null)?.error;
  if (e && typeof e.code === "string") return new ConnectionsError(e.code, e.message, e.action, status, body);
  return new ConnectionsError(
    "unexpected_response",
    `The service answered ${status} without an error body.`,
    "Try again; if it persists, tell the team that runs the service.",
    status,
    body,
  );
}

function network(cause: unknown): ConnectionsError {
  return new ConnectionsError(
    "network_error",
    "The service could not be reached.",
    "Check your connection and try again.",
    0,
    cause,
  );
}

/** The data of an openapi-fetch answer, or its error thrown as a ConnectionsError. */
async function ok<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let r;
  try {
    r = await call;
  } catch (cause) {
    throw network(cause);
  }
  if (r.error !== undefined || !r.response.ok) throw errorOf(r.response.status, r.error);
  return r.data as T;
}

/** The kind of a reconnect target: a notification's action or a connection. */
function reconnectTarget(target: Notification | Connection): { platform: string; reconnect: { connection_id?: string; authorization_id?: string } } {
  if ("action" in target) {
    const a = target.action;
    if (a.kind !== "reconnect") {
      throw new ConnectionsError("not_reconnectable", "This notification offers no reconnect.", a.kind === "replace_key" ? "Replace the key instead." : "Nothing to do.");
    }
    return {
      platform: target.platform,
      reconnect: a.connection_id ? { connection_id: a.connection_id } : { authorization_id: a.authorization_id ?? undefined },
    };
  }
  if (target.credential.kind !== "authorization") {
    throw new ConnectionsError("not_reconnectable", "Only a connection made by signing in can be reconnected.", "Replace its key, or upload a new file.");
  }
  return { platform: target.platform, reconnect: { connection_id: target.id } };
}

export class Connections {
  /** The typed client for every route of docs/openapi.json. */
  readonly api: Client<paths>;
  readonly origin: string;
  private readonly options: ConnectionsOptions;

  constructor(options: ConnectionsOptions) {
    this.options = options;
    this.origin = new URL(options.baseUrl, globalThis.location?.href).origin;
    this.api = createClient<paths>({ baseUrl: options.baseUrl.replace(/\/$/, ""), fetch: options.fetch });
    const auth: Middleware = {
      onRequest: async ({ request }) => {
        request.headers.set("authorization", `Bearer ${await this.token()}`);
        return request;
      },
    };
    this.api.use(auth);
  }

  private async token(): Promise<string> {
    const t = this.options.token;
    return typeof t === "function" ? await t() : t;
  }

  // --- reading -------------------------------------------------------------

  async providers(): Promise<Provider[]> {
    return (await ok(this.api.GET("/v1/providers"))).providers ?? [];
  }

  /** Every connection of the workspace (all pages), disconnected first. */
  async connections(query: { status?: Status["state"] } = {}): Promise<Connection[]> {
    return allPages(async (cursor) => {
      const page = await ok(this.api.GET("/v1/connections", { params: { query: { ...query, cursor, limit: 500 } } }));
      return [page.connections ?? [], page.next_cursor];
    });
  }

  async authorizations(): Promise<Authorization[]> {
    return allPages(async (cursor) => {
      const page = await ok(this.api.GET("/v1/authorizations", { params: { query: { cursor, limit: 500 } } }));
      return [page.authorizations ?? [], page.next_cursor];
    });
  }

  /** The newest notifications and how many are unread. */
  async notifications(): Promise<{ notifications: Notification[]; unread: number }> {
    const page = await ok(this.api.GET("/v1/notifications", { params: { query: { limit: 100 } } }));
    return { notifications: page.notifications ?? [], unread: page.unread ?? 0 };
  }

  /** A connection's recent sync runs, newest first. */
  async runs(connectionId: string, limit = 20): Promise<Run[]> {
    return (await ok(this.api.GET("/v1/connections/{id}/runs", { params: { path: { id: connectionId }, query: { limit } } }))).runs ?? [];
  }

  async markAllRead(): Promise<void> {
    await ok(this.api.POST("/v1/notifications/read-all"));
  }

  async syncNow(connectionId: string): Promise<void> {
    await ok(this.api.POST("/v1/connections/{id}/sync", { params: { path: { id: connectionId } } }));
  }

  // --- connecting ----------------------------------------------------------

  /**
   * Connects a platform by OAuth in a popup. Call it straight from a click
   * handler: the popup opens before anything is awaited, so blockers let it
   * be. Resolves when the popup reports the connection; rejects with
   * `popup_blocked`, `popup_closed`, `timeout`, or the callback's error code.
   */
  async connect(platform: string, options: ConnectOptions = {}): Promise<Connected> {
    const popup = globalThis.open("about:blank", "connections-connect", POPUP_FEATURES);
    if (!popup) {
      throw new ConnectionsError(
        "popup_blocked",
        "The browser blocked the sign-in window.",
        "Allow pop-ups for this site, then click Connect again.",
      );
    }
    let started;
    try {
      const body: ConnectStart = {
        platform,
        name: options.name ?? platform,
        params: options.params ?? {},
        return_to: options.returnTo ?? globalThis.location.origin + "/",
        ...(options.client !== undefined ? { client: options.client } : {}),
        ...(options.role ? { role: options.role } : {}),
        ...(options.reconnect ? { reconnect: options.reconnect } : {}),
      } as ConnectStart;
      started = await ok(this.api.POST("/v1/connect/start", { body }));
    } catch (e) {
      popup.close();
      throw e;
    }
    popup.location.href = started.launch_url;
    return this.waitForPopup(popup, options.signal);
  }

  /**
   * Connects by sending this window to the platform and back, for phones or
   * where a popup is unwelcome. The page navigates away; when it comes back,
   * `redirectResult()` reads the outcome from its address.
   */
  async connectByRedirect(platform: string, options: ConnectOptions = {}): Promise<never> {
    const here = globalThis.location;
    const body = {
      platform,
      name: options.name ?? platform,
      params: options.params ?? {},
      return_to: options.returnTo ?? here.origin + here.pathname,
      mode: "redirect",
      ...(options.client !== undefined ? { client: options.client } : {}),
      ...(options.role ? { role: options.role } : {}),
      ...(options.reconnect ? { reconnect: options.reconnect } : {}),
    } as ConnectStart;
    const started = await ok(this.api.POST("/v1/connect/start", { body }));
    here.assign(started.launch_url);
    return new Promise<never>(() => {});
  }

  /** reconnect() by redirect: see connectByRedirect(). */
  reconnectByRedirect(target: Notification | Connection, options: Omit<ConnectOptions, "reconnect"> = {}): Promise<never> {
    const { platform, reconnect } = reconnectTarget(target);
    const name = "name" in target ? target.name : target.data_source;
    return this.connectByRedirect(platform, { name, ...options, reconnect });
  }

  /** Reconnects the grant behind a notification or a connection: every data source on it is fixed, history and cursors kept. */
  reconnect(target: Notification | Connection, options: Omit<ConnectOptions, "reconnect"> = {}): Promise<Connected> {
    const { platform, reconnect } = reconnectTarget(target);
    const name = "name" in target ? target.name : target.data_source;
    return this.connect(platform, { name, ...options, reconnect });
  }

  private waitForPopup(popup: Window, signal?: AbortSignal): Promise<Connected> {
    const timeoutMs = this.options.connectTimeoutMs ?? 10 * 60 * 1000;
    return new Promise<Connected>((resolve, reject) => {
      const done = (f: () => void) => {
        globalThis.removeEventListener("message", onMessage);
        clearInterval(closedPoll);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        f();
      };
      const onMessage = (event: MessageEvent) => {
        // Only the API's own callback page, from the popup we opened.
        if (event.origin !== this.origin || event.source !== popup) return;
        const m = event.data as { type?: string; status?: string; error_code?: string; message?: string; action?: string } & Connected;
        if (!m || m.type !== "connections:oauth") return;
        if (m.status === "connected") {
          const result: Connected = { status: "connected", connection_id: m.connection_id ?? null, authorization_id: m.authorization_id ?? null };
          if (m.warning) Object.assign(result, { warning: m.warning, warning_message: m.warning_message });
          done(() => resolve(result));
        } else {
          done(() => reject(new ConnectionsError(m.error_code ?? "connect_failed", m.message ?? "The connection failed.", m.action ?? "Try again.", 0, m)));
        }
      };
      const closedPoll = setInterval(() => {
        if (popup.closed) {
          done(() => reject(new ConnectionsError("popup_closed", "The sign-in window was closed before it finished.", "Click Connect again and finish signing in.")));
        }
      }, 400);
      const timer = setTimeout(() => {
        popup.close();
        done(() => reject(new ConnectionsError("timeout", "Signing in took too long.", "Click Connect again and finish within 10 minutes.")));
      }, timeoutMs);
      const onAbort = () => {
        popup.close();
        done(() => reject(new ConnectionsError("aborted", "Connecting was cancelled.", "Click Connect to start again.")));
      };
      globalThis.addEventListener("message", onMessage);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Connects an API-key platform; the key is checked with the platform first. */
  async connectApiKey(platform: string, credentials: Record<string, string>, options: { name?: string; client?: { id: string; name: string } | null } = {}): Promise<Connection> {
    return ok(
      this.api.POST("/v1/connections/api-key", {
        body: { platform, name: options.name ?? platform, credentials, ...(options.client ? { client: options.client } : {}) } as never,
      }),
    ) as Promise<Connection>;
  }

  /** Replaces the key of an API-key connection: the new key is checked first, the old one stays until it passes. */
  async replaceKey(connection: string | Connection, credentials: Record<string, string>): Promise<Connection> {
    const id = typeof connection === "string" ? connection : connection.id;
    return ok(this.api.PUT("/v1/connections/{id}/api-key", { params: { path: { id } }, body: { credentials } })) as Promise<Connection>;
  }

  /** A new data source (or export destination) on an authorization the workspace already holds: no new sign-in. */
  async createConnection(authorizationId: string, options: { name: string; role?: "source" | "destination"; client?: { id: string; name: string } | null; accountId?: string }): Promise<Connection> {
    const body = {
      authorization_id: authorizationId,
      name: options.name,
      ...(options.role ? { role: options.role } : {}),
      ...(options.client !== undefined ? { client: options.client } : {}),
      ...(options.accountId ? { account_id: options.accountId } : {}),
    };
    return ok(this.api.POST("/v1/connections", { body })) as Promise<Connection>;
  }

  /** Renames an authorization in place (its connections keep using it). */
  async renameAuthorization(authorizationId: string, name: string): Promise<Authorization> {
    return ok(this.api.PATCH("/v1/authorizations/{id}", { params: { path: { id: authorizationId } }, body: { name } })) as Promise<Authorization>;
  }

  /** Your own member record: the kinds of alert email you turned off, and your time zone. */
  async me(): Promise<Member> {
    return ok(this.api.GET("/v1/members/me", {})) as Promise<Member>;
  }

  /** Changes your own email settings; fields left out stay as they are. `time_zone: null` is UTC. */
  async updateMe(settings: { email_opt_out?: AlertKind[]; time_zone?: string | null }): Promise<Member> {
    return ok(this.api.PATCH("/v1/members/me", { body: settings })) as Promise<Member>;
  }

  /** Creates a file-upload connection (custom costs); it waits for its first file. */
  async createFileConnection(platform: string, name: string, schedule: "monthly" | "weekly" | "none" = "monthly"): Promise<Connection> {
    return ok(
      this.api.POST("/v1/connections/file-upload", { body: { platform, name, upload_schedule: schedule } as never }),
    ) as Promise<Connection>;
  }

  /**
   * Uploads a CSV to a file-upload connection with progress. Up to 5 MB in
   * one request (validated and ingested at once); larger files go straight
   * to storage through a presigned URL and are processed as they land.
   * Rejects with the API's code; a file with row errors carries its
   * `upload` (row errors by line and column) in `details`.
   */
  async upload(connection: string | Connection, file: Blob, options: UploadOptions = {}): Promise<Upload> {
    const id = typeof connection === "string" ? connection : connection.id;
    const query = new URLSearchParams();
    if (options.period) query.set("period", options.period);
    if (options.importValidRows) query.set("import_valid_rows", "true");
    const qs = query.size ? `?${query}` : "";
    const base = this.options.baseUrl.replace(/\/$/, "");
    if (file.size <= DIRECT_UPLOAD_MAX) {
      const r = await send("POST", `${base}/v1/connections/${encodeURIComponent(id)}/uploads${qs}`, file, { authorization: `Bearer ${await this.token()}`, "content-type": "text/csv" }, options);
      if (r.status === 200 || r.status === 201) return r.body as Upload;
      throw errorOf(r.status, r.body);
    }
    const presigned = await ok(
      this.api.POST("/v1/connections/{id}/uploads/presigned", {
        params: { path: { id }, query: { period: options.period, import_valid_rows: options.importValidRows } },
      }),
    );
    const r = await send("PUT", presigned.upload_url!, file, { "content-type": "text/csv" }, options);
    if (r.status < 200 || r.status > 299) {
      throw new ConnectionsError("upload_failed", `Storage refused the file (${r.status}).`, "Try again; the link is valid for 15 minutes.", r.status);
    }
    // Processed as it lands: wait for the verdict, as a direct upload would.
    const uploadId = (presigned.upload as Upload).id!;
    for (;;) {
      const now = await this.getUpload(id, uploadId);
      if (now.state !== "awaiting_file") {
        if (now.state === "rejected") {
          const fileError = now.file_error;
          throw new ConnectionsError(fileError?.code ?? "invalid_rows", fileError?.message ?? "The file was rejected.", "Fix the file and upload it again.", 422, { upload: now });
        }
        return now;
      }
      if (options.signal?.aborted) throw new ConnectionsError("aborted", "Stopped waiting for the upload.", "Its state is in the upload list.");
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
    }
  }

  /** One upload's state and report (a presigned upload is processed after it lands). */
  async getUpload(connectionId: string, uploadId: string): Promise<Upload> {
    return ok(this.api.GET("/v1/connections/{id}/uploads/{upload_id}", { params: { path: { id: connectionId, upload_id: uploadId } } })) as Promise<Upload>;
  }
}

/** Every page of a list route, following its opaque cursors. */
async function allPages<T>(page: (cursor: string | undefined) => Promise<[T[], string | null | undefined]>): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  do {
    const [items, next] = await page(cursor);
    all.push(...items);
    cursor = next ?? undefined;
  } while (cursor);
  return all;
}

/** "code: message action", as an error line shows it. */
export function errorLine(e: unknown): string {
  const err = e instanceof ConnectionsError ? e : new ConnectionsError("internal", String(e), "Reload the page and try again.");
  return `${err.code}: ${err.message} ${err.action}`;
}

/** One request with upload progress (fetch reports none). */
function send(method: string, url: string, body: Blob, headers: Record<string, string>, options: UploadOptions): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => options.onProgress?.(e.loaded, e.lengthComputable ? e.total : body.size);
    xhr.onload = () => {
      let parsed: unknown = null;
      try {
        parsed = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        parsed = xhr.responseText;
      }
      options.onProgress?.(body.size, body.size);
      resolve({ status: xhr.status, body: parsed });
    };
    xhr.onerror = () => reject(network(new Error(`${method} ${url} failed`)));
    xhr.onabort = () => reject(new ConnectionsError("aborted", "The upload was cancelled.", "Choose the file again to upload it."));
    options.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

/**
 * The outcome of a connection made by redirect, read from the address the
 * platform sent the browser back to (null when it carries none). Remove the
 * parameters afterwards (history.replaceState) so a reload does not read it
 * again.
 */
export function redirectResult(address: string | URL = globalThis.location.href): Connected | ConnectionsError | null {
  const q = new URL(address).searchParams;
  if (q.get("status") === "connected") {
    const result: Connected = { status: "connected", connection_id: q.get("connection_id"), authorization_id: q.get("authorization_id") };
    if (q.get("warning")) result.warning = q.get("warning")!;
    return result;
  }
  if (q.get("status") === "error") {
    return new ConnectionsError(q.get("error_code") ?? "connect_failed", q.get("message") ?? "The connection failed.", q.get("action") ?? "Try again.");
  }
  return null;
}

/** The SDK for one user of one deployment. */
export function createConnections(options: ConnectionsOptions): Connections {
  return new Connections(options);
}

/** A human label for every status: what a merchant reads in a table. */
export function statusLabel(connection: Pick<Connection, "status" | "credential"> & { upload_overdue?: boolean }): string {
  const { state, reason } = connection.status;
  switch (state) {
    case "pending_authorization":
      return connection.credential.kind === "file_upload" ? "Waiting for the first file" : "Waiting for sign-in";
    case "initial_sync_in_progress":
      return "First sync running";
    case "connected":
      return connection.upload_overdue ? "Connected · file overdue" : "Connected";
    case "disconnected":
      return `Disconnected${reason ? ` · ${REASONS[reason] ?? reason.replaceAll("_", " ")}` : ""}`;
    case "error":
      return `Error${reason ? ` · ${REASONS[reason] ?? reason.replaceAll("_", " ")}` : ""}`;
    default: {
      // A state the API adds fails type-checking here until it has a label.
      const unlabelled: never = state;
      return String(unlabelled).replaceAll("_", " ");
    }
  }
}

const REASONS: Record<string, string> = {
  token_revoked: "access revoked",
  token_expired: "sign-in expired",
  refresh_failed: "could not renew access",
  insufficient_scope: "missing permissions",
  reauthorization_required: "sign in again",
  api_key_invalid: "key rejected",
  api_key_expired: "key expired",
  authorization_removed: "authorization removed",
  user_disconnected: "disconnected by a user",
  platform_unavailable: "platform unavailable",
  rate_limited: "rate limited",
  malformed_response: "unexpected answer",
  permission_denied: "permission denied",
  retries_exhausted: "retries exhausted",
  internal: "internal error",
};
