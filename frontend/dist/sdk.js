import {
  ALERT_KINDS,
  Connections,
  ConnectionsError,
  DIRECT_UPLOAD_MAX,
  createConnections,
  errorLine,
  redirectResult,
  statusLabel
} from "./shared.js";
export {
  ALERT_KINDS,
  Connections,
  ConnectionsError,
  DIRECT_UPLOAD_MAX,
  createConnections,
  errorLine,
  redirectResult,
  statusLabel
};
