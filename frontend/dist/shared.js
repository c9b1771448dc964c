// node_modules/openapi-fetch/dist/index.mjs
var PATH_PARAM_RE = /\{[^{}]+\}/g;
var supportsRequestInitExt = () => {
  return typeof process === "object" && Number.parseInt(process?.versions?.node?.substring(0, 2)) >= 18 && process.versions.undici;
};
function randomID() {
  return Math.random().toString(36).slice(2, 11);
}
function createClient(clientOptions) {
  let {
    baseUrl = "",
    Request: CustomRequest = globalThis.Request,
    fetch: baseFetch = globalThis.fetch,
    querySerializer: globalQuerySerializer,
    bodySerializer: globalBodySerializer,
    pathSerializer: globalPathSerializer,
    headers: baseHeaders,
    requestInitExt = void 0,
    ...baseOptions
  } = { ...clientOptions };
  requestInitExt = supportsRequestInitExt() ? requestInitExt : void 0;
  baseUrl = removeTrailingSlash(baseUrl);
  const globalMiddlewares = [];
  async function coreFetch(schemaPath, fetchOptions) {
    const {
      baseUrl: localBaseUrl,
      fetch = baseFetch,
      Request = CustomRequest,
      headers,
      params = {},
      parseAs = "json",
      querySerializer: requestQuerySerializer,
      bodySerializer = globalBodySerializer ?? defaultBodySerializer,
      pathSerializer: requestPathSerializer,
      body,
      middleware: requestMiddlewares = [],
      ...init
    } = fetchOptions || {};
    let finalBaseUrl = baseUrl;
    if (localBaseUrl) {
      finalBaseUrl = removeTrailingSlash(localBaseUrl) ?? baseUrl;
    }
    let querySerializer = typeof globalQuerySerializer === "function" ? globalQuerySerializer : createQuerySerializer(globalQuerySerializer);
    if (requestQuerySerializer) {
      querySerializer = typeof requestQuerySerializer === "function" ? requestQuerySerializer : createQuerySerializer({
        ...typeof globalQuerySerializer === "object" ? globalQuerySerializer : {},
        ...requestQuerySerializer
      });
    }
    const pathSerializer = requestPathSerializer || globalPathSerializer || defaultPathSerializer;
    const serializedBody = body === void 0 ? void 0 : bodySerializer(
      body,
      // Note: we declare mergeHeaders() both here and below because it’s a bit of a chicken-or-egg situation:
      // bodySerializer() needs all headers so we aren’t dropping ones set by the user, however,
      // the result of this ALSO sets the lowest-priority content-type header. So we re-merge below,
      // setting the content-type at the very beginning to be overwritten.
      // Lastly, based on the way headers work, it’s not a simple “present-or-not” check becauase null intentionally un-sets headers.
      mergeHeaders(baseHeaders, headers, params.header)
    );
    const finalHeaders = mergeHeaders(
      // with no body, we should not to set Content-Type
      serializedBody === void 0 || // if serialized body is FormData; browser will correctly set Content-Type & boundary expression
      serializedBody instanceof FormData ? {} : {
        "Content-Type": "application/json"
      },
      baseHeaders,
      headers,
      params.header
    );
    const finalMiddlewares = [...globalMiddlewares, ...requestMiddlewares];
    const requestInit = {
      redirect: "follow",
      ...baseOptions,
      ...init,
      body: serializedBody,
      headers: finalHeaders
    };
    let id;
    let options;
    let request = new Request(
      createFinalURL(schemaPath, { baseUrl: finalBaseUrl, params, querySerializer, pathSerializer }),
      requestInit
    );
    let response;
    for (const key in init) {
      if (!(key in request)) {
        request[key] = init[key];
      }
    }
    if (finalMiddlewares.length) {
      id = randomID();
      options = Object.freeze({
        baseUrl: finalBaseUrl,
        fetch,
        parseAs,
        querySerializer,
        bodySerializer,
        pathSerializer
      });
      for (const m of finalMiddlewares) {
        if (m && typeof m === "object" && typeof m.onRequest === "function") {
          const result = await m.onRequest({
            request,
            schemaPath,
            params,
            options,
            id
          });
          if (result) {
            if (result instanceof Request) {
              request = result;
            } else if (result instanceof Response) {
              response = result;
              break;
            } else {
              throw new Error("onRequest: must return new Request() or Response() when modifying the request");
            }
          }
        }
      }
    }
    if (!response) {
      try {
        response = await fetch(request, requestInitExt);
      } catch (error2) {
        let errorAfterMiddleware = error2;
        if (finalMiddlewares.length) {
          for (let i = finalMiddlewares.length - 1; i >= 0; i--) {
            const m = finalMiddlewares[i];
            if (m && typeof m === "object" && typeof m.onError === "function") {
              const result = await m.onError({
                request,
                error: errorAfterMiddleware,
                schemaPath,
                params,
                options,
                id
              });
              if (result) {
                if (result instanceof Response) {
                  errorAfterMiddleware = void 0;
                  response = result;
                  break;
                }
                if (result instanceof Error) {
                  errorAfterMiddleware = result;
                  continue;
                }
                throw new Error("onError: must return new Response() or instance of Error");
              }
            }
          }
        }
        if (errorAfterMiddleware) {
          throw errorAfterMiddleware;
        }
      }
      if (finalMiddlewares.length) {
        for (let i = finalMiddlewares.length - 1; i >= 0; i--) {
          const m = finalMiddlewares[i];
          if (m && typeof m === "object" && typeof m.onResponse === "function") {
            const result = await m.onResponse({
              request,
              response,
              schemaPath,
              params,
              options,
              id
            });
            if (result) {
              if (!(result instanceof Response)) {
                throw new Error("onResponse: must return new Response() when modifying the response");
              }
              response = result;
            }
          }
        }
      }
    }
    const contentLength = response.headers.get("Content-Length");
    if (response.status === 204 || request.method === "HEAD" || contentLength === "0" && !response.headers.get("Transfer-Encoding")?.includes("chunked")) {
      return response.ok ? { data: void 0, response } : { error: void 0, response };
    }
    if (response.ok) {
      const getResponseData = async () => {
        if (parseAs === "stream") {
          return response.body;
        }
        if (parseAs === "json" && !contentLength) {
          const raw = await response.text();
          return raw ? JSON.parse(raw) : void 0;
        }
        return await response[parseAs]();
      };
      return { data: await getResponseData(), response };
    }
    let error = await response.text();
    try {
      error = JSON.parse(error);
    } catch {
    }
    return { error, response };
  }
  return {
    request(method, url, init) {
      return coreFetch(url, { ...init, method: method.toUpperCase() });
    },
    /** Call a GET endpoint */
    GET(url, init) {
      return coreFetch(url, { ...init, method: "GET" });
    },
    /** Call a PUT endpoint */
    PUT(url, init) {
      return coreFetch(url, { ...init, method: "PUT" });
    },
    /** Call a POST endpoint */
    POST(url, init) {
      return coreFetch(url, { ...init, method: "POST" });
    },
    /** Call a DELETE endpoint */
    DELETE(url, init) {
      return coreFetch(url, { ...init, method: "DELETE" });
    },
    /** Call a OPTIONS endpoint */
    OPTIONS(url, init) {
      return coreFetch(url, { ...init, method: "OPTIONS" });
    },
    /** Call a HEAD endpoint */
    HEAD(url, init) {
      return coreFetch(url, { ...init, method: "HEAD" });
    },
    /** Call a PATCH endpoint */
    PATCH(url, init) {
      return coreFetch(url, { ...init, method: "PATCH" });
    },
    /** Call a TRACE endpoint */
    TRACE(url, init) {
      return coreFetch(url, { ...init, method: "TRACE" });
    },
    /** Register middleware */
    use(...middleware) {
      for (const m of middleware) {
        if (!m) {
          continue;
        }
        if (typeof m !== "object" || !("onRequest" in m || "onResponse" in m || "onError" in m)) {
          throw new Error("Middleware must be an object with one of `onRequest()`, `onResponse() or `onError()`");
        }
        globalMiddlewares.push(m);
      }
    },
    /** Unregister middleware */
    eject(...middleware) {
      for (const m of middleware) {
        const i = globalMiddlewares.indexOf(m);
        if (i !== -1) {
          globalMiddlewares.splice(i, 1);
        }
      }
    }
  };
}
function serializePrimitiveParam(name, value, options) {
  if (value === void 0 || value === null) {
    return "";
  }
  if (typeof value === "object") {
    throw new Error(
      "Deeply-nested arrays/objects aren\u2019t supported. Provide your own `querySerializer()` to handle these."
    );
  }
  return `${name}=${options?.allowReserved === true ? value : encodeURIComponent(value)}`;
}
function serializeObjectParam(name, value, options) {
  if (!value || typeof value !== "object") {
    return "";
  }
  const values = [];
  const joiner = {
    simple: ",",
    label: ".",
    matrix: ";"
  }[options.style] || "&";
  if (options.style !== "deepObject" && options.explode === false) {
    for (const k in value) {
      values.push(k, options.allowReserved === true ? value[k] : encodeURIComponent(value[k]));
    }
    const final2 = values.join(",");
    switch (options.style) {
      case "form": {
        return `${name}=${final2}`;
      }
      case "label": {
        return `.${final2}`;
      }
      case "matrix": {
        return `;${name}=${final2}`;
      }
      default: {
        return final2;
      }
    }
  }
  for (const k in value) {
    const finalName = options.style === "deepObject" ? `${name}[${k}]` : k;
    values.push(serializePrimitiveParam(finalName, value[k], options));
  }
  const final = values.join(joiner);
  return options.style === "label" || options.style === "matrix" ? `${joiner}${final}` : final;
}
function serializeArrayParam(name, value, options) {
  if (!Array.isArray(value)) {
    return "";
  }
  if (options.explode === false) {
    const joiner2 = { form: ",", spaceDelimited: "%20", pipeDelimited: "|" }[options.style] || ",";
    const final = (options.allowReserved === true ? value : value.map((v) => encodeURIComponent(v))).join(joiner2);
    switch (options.style) {
      case "simple": {
        return final;
      }
      case "label": {
        return `.${final}`;
      }
      case "matrix": {
        return `;${name}=${final}`;
      }
      // case "spaceDelimited":
      // case "pipeDelimited":
      default: {
        return `${name}=${final}`;
      }
    }
  }
  const joiner = { simple: ",", label: ".", matrix: ";" }[options.style] || "&";
  const values = [];
  for (const v of value) {
    if (options.style === "simple" || options.style === "label") {
      values.push(options.allowReserved === true ? v : encodeURIComponent(v));
    } else {
      values.push(serializePrimitiveParam(name, v, options));
    }
  }
  return options.style === "label" || options.style === "matrix" ? `${joiner}${values.join(joiner)}` : values.join(joiner);
}
function createQuerySerializer(options) {
  return function querySerializer(queryParams) {
    const search = [];
    if (queryParams && typeof queryParams === "object") {
      for (const name in queryParams) {
        const value = queryParams[name];
        if (value === void 0 || value === null) {
          continue;
        }
        if (Array.isArray(value)) {
          if (value.length === 0) {
            continue;
          }
          search.push(
            serializeArrayParam(name, value, {
              style: "form",
              explode: true,
              ...options?.array,
              allowReserved: options?.allowReserved || false
            })
          );
          continue;
        }
        if (typeof value === "object") {
          search.push(
            serializeObjectParam(name, value, {
              style: "deepObject",
              explode: true,
              ...options?.object,
              allowReserved: options?.allowReserved || false
            })
          );
          continue;
        }
        search.push(serializePrimitiveParam(name, value, options));
      }
    }
    return search.join("&");
  };
}
function defaultPathSerializer(pathname, pathParams) {
  let nextURL = pathname;
  for (const match of pathname.match(PATH_PARAM_RE) ?? []) {
    let name = match.substring(1, match.length - 1);
    let explode = false;
    let style = "simple";
    if (name.endsWith("*")) {
      explode = true;
      name = name.substring(0, name.length - 1);
    }
    if (name.startsWith(".")) {
      style = "label";
      name = name.substring(1);
    } else if (name.startsWith(";")) {
      style = "matrix";
      name = name.substring(1);
    }
    if (!pathParams || pathParams[name] === void 0 || pathParams[name] === null) {
      continue;
    }
    const value = pathParams[name];
    if (Array.isArray(value)) {
      nextURL = nextURL.replace(match, serializeArrayParam(name, value, { style, explode }));
      continue;
    }
    if (typeof value === "object") {
      nextURL = nextURL.replace(match, serializeObjectParam(name, value, { style, explode }));
      continue;
    }
    if (style === "matrix") {
      nextURL = nextURL.replace(match, `;${serializePrimitiveParam(name, value)}`);
      continue;
    }
    nextURL = nextURL.replace(match, style === "label" ? `.${encodeURIComponent(value)}` : encodeURIComponent(value));
  }
  return nextURL;
}
function defaultBodySerializer(body, headers) {
  if (body instanceof FormData) {
    return body;
  }
  if (headers) {
    const contentType = headers.get instanceof Function ? headers.get("Content-Type") ?? headers.get("content-type") : headers["Content-Type"] ?? headers["content-type"];
    if (contentType === "application/x-www-form-urlencoded") {
      return new URLSearchParams(body).toString();
    }
  }
  return JSON.stringify(body);
}
function createFinalURL(pathname, options) {
  let finalURL = `${options.baseUrl}${pathname}`;
  if (options.params?.path) {
    finalURL = options.pathSerializer(finalURL, options.params.path);
  }
  let search = options.querySerializer(options.params.query ?? {});
  if (search.startsWith("?")) {
    search = search.substring(1);
  }
  if (search) {
    finalURL += `?${search}`;
  }
  return finalURL;
}
function mergeHeaders(...allHeaders) {
  const finalHeaders = new Headers();
  for (const h of allHeaders) {
    if (!h || typeof h !== "object") {
      continue;
    }
    const iterator = h instanceof Headers ? h.entries() : Object.entries(h);
    for (const [k, v] of iterator) {
      if (v === null) {
        finalHeaders.delete(k);
      } else if (Array.isArray(v)) {
        for (const v2 of v) {
          finalHeaders.append(k, v2);
        }
      } else if (v !== void 0) {
        finalHeaders.set(k, v);
      }
    }
  }
  return finalHeaders;
}
function removeTrailingSlash(url) {
  if (url.endsWith("/")) {
    return url.substring(0, url.length - 1);
  }
  return url;
}

// src/index.ts
var ALERT_KINDS = [
  { kind: "disconnected", label: "Disconnections" },
  { kind: "sync_failed", label: "Sync failures" },
  { kind: "data_not_syncing", label: "Stale data" },
  { kind: "expiring_soon", label: "Authorizations expiring soon" },
  { kind: "recovered", label: "Recoveries" }
];
var ConnectionsError = class extends Error {
  /** Stable machine code: the API's (`invalid_state`, `api_key_invalid`, …) or the SDK's (`popup_blocked`, `popup_closed`, `timeout`, `network_error`). */
  code;
  /** What the user can do about it. */
  action;
  /** The HTTP status (0 when no answer came). */
  status;
  /** The rest of the answer (an upload's row errors, for example). */
  details;
  constructor(code, message, action, status = 0, details = void 0) {
    super(message);
    this.name = "ConnectionsError";
    this.code = code;
    this.action = action;
    this.status = status;
    this.details = details;
  }
};
var DIRECT_UPLOAD_MAX = 5 * 1024 * 1024;
var POPUP_FEATURES = "popup,width=560,height=720";
function errorOf(status, body) {
  const e = body?.error;
  if (e && typeof e.code === "string") return new ConnectionsError(e.code, e.message, e.action, status, body);
  return new ConnectionsError(
    "unexpected_response",
    `The service answered ${status} without an error body.`,
    "Try again; if it persists, tell the team that runs the service.",
    status,
    body
  );
}
function network(cause) {
  return new ConnectionsError(
    "network_error",
    "The service could not be reached.",
    "Check your connection and try again.",
    0,
    cause
  );
}
async function ok(call) {
  let r;
  try {
    r = await call;
  } catch (cause) {
    throw network(cause);
  }
  if (r.error !== void 0 || !r.response.ok) throw errorOf(r.response.status, r.error);
  return r.data;
}
function reconnectTarget(target) {
  if ("action" in target) {
    const a = target.action;
    if (a.kind !== "reconnect") {
      throw new ConnectionsError("not_reconnectable", "This notification offers no reconnect.", a.kind === "replace_key" ? "Replace the key instead." : "Nothing to do.");
    }
    return {
      platform: target.platform,
      reconnect: a.connection_id ? { connection_id: a.connection_id } : { authorization_id: a.authorization_id ?? void 0 }
    };
  }
  if (target.credential.kind !== "authorization") {
    throw new ConnectionsError("not_reconnectable", "Only a connection made by signing in can be reconnected.", "Replace its key, or upload a new file.");
  }
  return { platform: target.platform, reconnect: { connection_id: target.id } };
}
var Connections = class {
  /** The typed client for every route of docs/openapi.json. */
  api;
  origin;
  options;
  constructor(options) {
    this.options = options;
    this.origin = new URL(options.baseUrl, globalThis.location?.href).origin;
    this.api = createClient({ baseUrl: options.baseUrl.replace(/\/$/, ""), fetch: options.fetch });
    const auth = {
      onRequest: async ({ request }) => {
        request.headers.set("authorization", `Bearer ${await this.token()}`);
        return request;
      }
    };
    this.api.use(auth);
  }
  async token() {
    const t = this.options.token;
    return typeof t === "function" ? await t() : t;
  }
  // --- reading -------------------------------------------------------------
  async providers() {
    return (await ok(this.api.GET("/v1/providers"))).providers ?? [];
  }
  /** Every connection of the workspace (all pages), disconnected first. */
  async connections(query = {}) {
    return allPages(async (cursor) => {
      const page = await ok(this.api.GET("/v1/connections", { params: { query: { ...query, cursor, limit: 500 } } }));
      return [page.connections ?? [], page.next_cursor];
    });
  }
  async authorizations() {
    return allPages(async (cursor) => {
      const page = await ok(this.api.GET("/v1/authorizations", { params: { query: { cursor, limit: 500 } } }));
      return [page.authorizations ?? [], page.next_cursor];
    });
  }
  /** The newest notifications and how many are unread. */
  async notifications() {
    const page = await ok(this.api.GET("/v1/notifications", { params: { query: { limit: 100 } } }));
    return { notifications: page.notifications ?? [], unread: page.unread ?? 0 };
  }
  /** A connection's recent sync runs, newest first. */
  async runs(connectionId, limit = 20) {
    return (await ok(this.api.GET("/v1/connections/{id}/runs", { params: { path: { id: connectionId }, query: { limit } } }))).runs ?? [];
  }
  async markAllRead() {
    await ok(this.api.POST("/v1/notifications/read-all"));
  }
  async syncNow(connectionId) {
    await ok(this.api.POST("/v1/connections/{id}/sync", { params: { path: { id: connectionId } } }));
  }
  // --- connecting ----------------------------------------------------------
  /**
   * Connects a platform by OAuth in a popup. Call it straight from a click
   * handler: the popup opens before anything is awaited, so blockers let it
   * be. Resolves when the popup reports the connection; rejects with
   * `popup_blocked`, `popup_closed`, `timeout`, or the callback's error code.
   */
  async connect(platform, options = {}) {
    const popup = globalThis.open("about:blank", "connections-connect", POPUP_FEATURES);
    if (!popup) {
      throw new ConnectionsError(
        "popup_blocked",
        "The browser blocked the sign-in window.",
        "Allow pop-ups for this site, then click Connect again."
      );
    }
    let started;
    try {
      const body = {
        platform,
        name: options.name ?? platform,
        params: options.params ?? {},
        return_to: options.returnTo ?? globalThis.location.origin + "/",
        ...options.client !== void 0 ? { client: options.client } : {},
        ...options.role ? { role: options.role } : {},
        ...options.reconnect ? { reconnect: options.reconnect } : {}
      };
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
  async connectByRedirect(platform, options = {}) {
    const here = globalThis.location;
    const body = {
      platform,
      name: options.name ?? platform,
      params: options.params ?? {},
      return_to: options.returnTo ?? here.origin + here.pathname,
      mode: "redirect",
      ...options.client !== void 0 ? { client: options.client } : {},
      ...options.role ? { role: options.role } : {},
      ...options.reconnect ? { reconnect: options.reconnect } : {}
    };
    const started = await ok(this.api.POST("/v1/connect/start", { body }));
    here.assign(started.launch_url);
    return new Promise(() => {
    });
  }
  /** reconnect() by redirect: see connectByRedirect(). */
  reconnectByRedirect(target, options = {}) {
    const { platform, reconnect } = reconnectTarget(target);
    const name = "name" in target ? target.name : target.data_source;
    return this.connectByRedirect(platform, { name, ...options, reconnect });
  }
  /** Reconnects the grant behind a notification or a connection: every data source on it is fixed, history and cursors kept. */
  reconnect(target, options = {}) {
    const { platform, reconnect } = reconnectTarget(target);
    const name = "name" in target ? target.name : target.data_source;
    return this.connect(platform, { name, ...options, reconnect });
  }
  waitForPopup(popup, signal) {
    const timeoutMs = this.options.connectTimeoutMs ?? 10 * 60 * 1e3;
    return new Promise((resolve, reject) => {
      const done = (f) => {
        globalThis.removeEventListener("message", onMessage);
        clearInterval(closedPoll);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        f();
      };
      const onMessage = (event) => {
        if (event.origin !== this.origin || event.source !== popup) return;
        const m = event.data;
        if (!m || m.type !== "connections:oauth") return;
        if (m.status === "connected") {
          const result = { status: "connected", connection_id: m.connection_id ?? null, authorization_id: m.authorization_id ?? null };
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
  async connectApiKey(platform, credentials, options = {}) {
    return ok(
      this.api.POST("/v1/connections/api-key", {
        body: { platform, name: options.name ?? platform, credentials, ...options.client ? { client: options.client } : {} }
      })
    );
  }
  /** Replaces the key of an API-key connection: the new key is checked first, the old one stays until it passes. */
  async replaceKey(connection, credentials) {
    const id = typeof connection === "string" ? connection : connection.id;
    return ok(this.api.PUT("/v1/connections/{id}/api-key", { params: { path: { id } }, body: { credentials } }));
  }
  /** A new data source (or export destination) on an authorization the workspace already holds: no new sign-in. */
  async createConnection(authorizationId, options) {
    const body = {
      authorization_id: authorizationId,
      name: options.name,
      ...options.role ? { role: options.role } : {},
      ...options.client !== void 0 ? { client: options.client } : {},
      ...options.accountId ? { account_id: options.accountId } : {}
    };
    return ok(this.api.POST("/v1/connections", { body }));
  }
  /** Renames an authorization in place (its connections keep using it). */
  async renameAuthorization(authorizationId, name) {
    return ok(this.api.PATCH("/v1/authorizations/{id}", { params: { path: { id: authorizationId } }, body: { name } }));
  }
  /** Your own member record: the kinds of alert email you turned off, and your time zone. */
  async me() {
    return ok(this.api.GET("/v1/members/me", {}));
  }
  /** Changes your own email settings; fields left out stay as they are. `time_zone: null` is UTC. */
  async updateMe(settings) {
    return ok(this.api.PATCH("/v1/members/me", { body: settings }));
  }
  /** Creates a file-upload connection (custom costs); it waits for its first file. */
  async createFileConnection(platform, name, schedule = "monthly") {
    return ok(
      this.api.POST("/v1/connections/file-upload", { body: { platform, name, upload_schedule: schedule } })
    );
  }
  /**
   * Uploads a CSV to a file-upload connection with progress. Up to 5 MB in
   * one request (validated and ingested at once); larger files go straight
   * to storage through a presigned URL and are processed as they land.
   * Rejects with the API's code; a file with row errors carries its
   * `upload` (row errors by line and column) in `details`.
   */
  async upload(connection, file, options = {}) {
    const id = typeof connection === "string" ? connection : connection.id;
    const query = new URLSearchParams();
    if (options.period) query.set("period", options.period);
    if (options.importValidRows) query.set("import_valid_rows", "true");
    const qs = query.size ? `?${query}` : "";
    const base = this.options.baseUrl.replace(/\/$/, "");
    if (file.size <= DIRECT_UPLOAD_MAX) {
      const r2 = await send("POST", `${base}/v1/connections/${encodeURIComponent(id)}/uploads${qs}`, file, { authorization: `Bearer ${await this.token()}`, "content-type": "text/csv" }, options);
      if (r2.status === 200 || r2.status === 201) return r2.body;
      throw errorOf(r2.status, r2.body);
    }
    const presigned = await ok(
      this.api.POST("/v1/connections/{id}/uploads/presigned", {
        params: { path: { id }, query: { period: options.period, import_valid_rows: options.importValidRows } }
      })
    );
    const r = await send("PUT", presigned.upload_url, file, { "content-type": "text/csv" }, options);
    if (r.status < 200 || r.status > 299) {
      throw new ConnectionsError("upload_failed", `Storage refused the file (${r.status}).`, "Try again; the link is valid for 15 minutes.", r.status);
    }
    const uploadId = presigned.upload.id;
    for (; ; ) {
      const now = await this.getUpload(id, uploadId);
      if (now.state !== "awaiting_file") {
        if (now.state === "rejected") {
          const fileError = now.file_error;
          throw new ConnectionsError(fileError?.code ?? "invalid_rows", fileError?.message ?? "The file was rejected.", "Fix the file and upload it again.", 422, { upload: now });
        }
        return now;
      }
      if (options.signal?.aborted) throw new ConnectionsError("aborted", "Stopped waiting for the upload.", "Its state is in the upload list.");
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1e3));
    }
  }
  /** One upload's state and report (a presigned upload is processed after it lands). */
  async getUpload(connectionId, uploadId) {
    return ok(this.api.GET("/v1/connections/{id}/uploads/{upload_id}", { params: { path: { id: connectionId, upload_id: uploadId } } }));
  }
};
async function allPages(page) {
  const all = [];
  let cursor;
  do {
    const [items, next] = await page(cursor);
    all.push(...items);
    cursor = next ?? void 0;
  } while (cursor);
  return all;
}
function errorLine(e) {
  const err = e instanceof ConnectionsError ? e : new ConnectionsError("internal", String(e), "Reload the page and try again.");
  return `${err.code}: ${err.message} ${err.action}`;
}
function send(method, url, body, headers, options) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => options.onProgress?.(e.loaded, e.lengthComputable ? e.total : body.size);
    xhr.onload = () => {
      let parsed = null;
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
function redirectResult(address = globalThis.location.href) {
  const q = new URL(address).searchParams;
  if (q.get("status") === "connected") {
    const result = { status: "connected", connection_id: q.get("connection_id"), authorization_id: q.get("authorization_id") };
    if (q.get("warning")) result.warning = q.get("warning");
    return result;
  }
  if (q.get("status") === "error") {
    return new ConnectionsError(q.get("error_code") ?? "connect_failed", q.get("message") ?? "The connection failed.", q.get("action") ?? "Try again.");
  }
  return null;
}
function createConnections(options) {
  return new Connections(options);
}
function statusLabel(connection) {
  const { state, reason } = connection.status;
  switch (state) {
    case "pending_authorization":
      return connection.credential.kind === "file_upload" ? "Waiting for the first file" : "Waiting for sign-in";
    case "initial_sync_in_progress":
      return "First sync running";
    case "connected":
      return connection.upload_overdue ? "Connected \xB7 file overdue" : "Connected";
    case "disconnected":
      return `Disconnected${reason ? ` \xB7 ${REASONS[reason] ?? reason.replaceAll("_", " ")}` : ""}`;
    case "error":
      return `Error${reason ? ` \xB7 ${REASONS[reason] ?? reason.replaceAll("_", " ")}` : ""}`;
    default: {
      const unlabelled = state;
      return String(unlabelled).replaceAll("_", " ");
    }
  }
}
var REASONS = {
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
  internal: "internal error"
};

export {
  ALERT_KINDS,
  ConnectionsError,
  DIRECT_UPLOAD_MAX,
  Connections,
  errorLine,
  redirectResult,
  createConnections,
  statusLabel
};
