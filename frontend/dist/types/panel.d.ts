import { Connections, ConnectionsError, redirectResult, statusLabel } from "./index";
export { Connections, ConnectionsError, redirectResult, statusLabel };
export declare class ConnectionsPanel extends HTMLElement {
    static observedAttributes: string[];
    private sdk;
    private tokenValue;
    private providers;
    private root;
    private timer;
    private generation;
    private rows;
    private followedLink;
    private ui;
    private get prefs();
    constructor();
    /** The user's bearer token (or a function returning a fresh one). Setting it (re)starts the panel. */
    set token(value: string | (() => string | Promise<string>) | null);
    get token(): string | (() => string | Promise<string>) | null;
    /** The SDK instance the panel uses (set it to share yours). */
    set connections(sdk: Connections | null);
    get connections(): Connections | null;
    connectedCallback(): void;
    disconnectedCallback(): void;
    attributeChangedCallback(): void;
    private client;
    private render;
    private start;
    private provider;
    private paintCatalog;
    private connect;
    /** Sign-in in this window instead of a popup: attribute `connect-mode="redirect"`, or after a blocked popup. */
    private redirect;
    /** The outcome of a sign-in by redirect, once, when the browser comes back. */
    private readRedirect;
    /** Runs the OAuth popup. Called straight from a click, so the popup opens before any await. */
    private oauth;
    private paramsForm;
    /** The key form of a platform: a new connection, or a replacement key for one. */
    private keyForm;
    private uploadForm;
    refresh(): Promise<void>;
    /** Rows are kept by connection id and updated in place: focus and selection survive every refresh. */
    private paintConnections;
    /** A row's buttons, rebuilt only when the set of actions changes. */
    private paintActions;
    private rowAction;
    private latest;
    /** The connection's recent runs, newest first. */
    private history;
    /** One item per authorization, rebuilt only when one changes (its buttons keep focus otherwise). */
    private paintAuthorizations;
    /** A new data source or export destination on an authorization the workspace holds: no new sign-in. */
    private addSourceForm;
    private renameForm;
    private paintNotifications;
    private clearMessages;
    private showError;
    /**
     * The pages an alert email's button leads to (`/reconnect`, `/replace-key`,
     * `/upload`, `/sync`, each with `connection_id`): the row is brought into
     * view and its action opened. A sign-in needs the person's own click (a
     * popup opens only from one), so Reconnect is focused and says so.
     */
    private followEmailLink;
    private closePreferences;
    /** Which kinds of alert email reach me, and the time zone their times are in. */
    private preferences;
    private act;
}
declare global {
    interface HTMLElementTagNameMap {
        "connections-panel": ConnectionsPanel;
    }
}
