import { type Client } from "openapi-fetch";
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
export declare const ALERT_KINDS: {
    kind: AlertKind;
    label: string;
}[];
export type Run = NonNullable<paths["/v1/connections/{id}/runs"]["get"]["responses"][200]["content"]["application/json"]["runs"]>[number];
/** Every failure of the SDK: the API's error, or one of the browser's own. */
export declare class ConnectionsError extends Error {
    /** Stable machine code: the API's (`invalid_state`, `api_key_invalid`, …) or the SDK's (`popup_blocked`, `popup_closed`, `timeout`, `network_error`). */
    readonly code: string;
    /** What the user can do about it. */
    readonly action: string;
    /** The HTTP status (0 when no answer came). */
    readonly status: number;
    /** The rest of the answer (an upload's row errors, for example). */
    readonly details: unknown;
    constructor(code: string, message: string, action: string, status?: number, details?: unknown);
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
    client?: {
        id: string;
        name: string;
    } | null;
    role?: "source" | "destination";
    /** Where the popup reports back; must be an allowed origin (default: this page). */
    returnTo?: string;
    /** Reconnect this connection or authorization instead of creating one. */
    reconnect?: {
        connection_id?: string;
        authorization_id?: string;
    };
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
export declare const DIRECT_UPLOAD_MAX: number;
export declare class Connections {
    /** The typed client for every route of docs/openapi.json. */
    readonly api: Client<paths>;
    readonly origin: string;
    private readonly options;
    constructor(options: ConnectionsOptions);
    private token;
    providers(): Promise<Provider[]>;
    /** Every connection of the workspace (all pages), disconnected first. */
    connections(query?: {
        status?: Status["state"];
    }): Promise<Connection[]>;
    authorizations(): Promise<Authorization[]>;
    /** The newest notifications and how many are unread. */
    notifications(): Promise<{
        notifications: Notification[];
        unread: number;
    }>;
    /** A connection's recent sync runs, newest first. */
    runs(connectionId: string, limit?: number): Promise<Run[]>;
    markAllRead(): Promise<void>;
    syncNow(connectionId: string): Promise<void>;
    /**
     * Connects a platform by OAuth in a popup. Call it straight from a click
     * handler: the popup opens before anything is awaited, so blockers let it
     * be. Resolves when the popup reports the connection; rejects with
     * `popup_blocked`, `popup_closed`, `timeout`, or the callback's error code.
     */
    connect(platform: string, options?: ConnectOptions): Promise<Connected>;
    /**
     * Connects by sending this window to the platform and back, for phones or
     * where a popup is unwelcome. The page navigates away; when it comes back,
     * `redirectResult()` reads the outcome from its address.
     */
    connectByRedirect(platform: string, options?: ConnectOptions): Promise<never>;
    /** reconnect() by redirect: see connectByRedirect(). */
    reconnectByRedirect(target: Notification | Connection, options?: Omit<ConnectOptions, "reconnect">): Promise<never>;
    /** Reconnects the grant behind a notification or a connection: every data source on it is fixed, history and cursors kept. */
    reconnect(target: Notification | Connection, options?: Omit<ConnectOptions, "reconnect">): Promise<Connected>;
    private waitForPopup;
    /** Connects an API-key platform; the key is checked with the platform first. */
    connectApiKey(platform: string, credentials: Record<string, string>, options?: {
        name?: string;
        client?: {
            id: string;
            name: string;
        } | null;
    }): Promise<Connection>;
    /** Replaces the key of an API-key connection: the new key is checked first, the old one stays until it passes. */
    replaceKey(connection: string | Connection, credentials: Record<string, string>): Promise<Connection>;
    /** A new data source (or export destination) on an authorization the workspace already holds: no new sign-in. */
    createConnection(authorizationId: string, options: {
        name: string;
        role?: "source" | "destination";
        client?: {
            id: string;
            name: string;
        } | null;
        accountId?: string;
    }): Promise<Connection>;
    /** Renames an authorization in place (its connections keep using it). */
    renameAuthorization(authorizationId: string, name: string): Promise<Authorization>;
    /** Your own member record: the kinds of alert email you turned off, and your time zone. */
    me(): Promise<Member>;
    /** Changes your own email settings; fields left out stay as they are. `time_zone: null` is UTC. */
    updateMe(settings: {
        email_opt_out?: AlertKind[];
        time_zone?: string | null;
    }): Promise<Member>;
    /** Creates a file-upload connection (custom costs); it waits for its first file. */
    createFileConnection(platform: string, name: string, schedule?: "monthly" | "weekly" | "none"): Promise<Connection>;
    /**
     * Uploads a CSV to a file-upload connection with progress. Up to 5 MB in
     * one request (validated and ingested at once); larger files go straight
     * to storage through a presigned URL and are processed as they land.
     * Rejects with the API's code; a file with row errors carries its
     * `upload` (row errors by line and column) in `details`.
     */
    upload(connection: string | Connection, file: Blob, options?: UploadOptions): Promise<Upload>;
    /** One upload's state and report (a presigned upload is processed after it lands). */
    getUpload(connectionId: string, uploadId: string): Promise<Upload>;
}
/** "code: message action", as an error line shows it. */
export declare function errorLine(e: unknown): string;
/**
 * The outcome of a connection made by redirect, read from the address the
 * platform sent the browser back to (null when it carries none). Remove the
 * parameters afterwards (history.replaceState) so a reload does not read it
 * again.
 */
export declare function redirectResult(address?: string | URL): Connected | ConnectionsError | null;
/** The SDK for one user of one deployment. */
export declare function createConnections(options: ConnectionsOptions): Connections;
/** A human label for every status: what a merchant reads in a table. */
export declare function statusLabel(connection: Pick<Connection, "status" | "credential"> & {
    upload_overdue?: boolean;
}): string;
