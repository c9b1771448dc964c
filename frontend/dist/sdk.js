import {
  Connections,
  ConnectionsError,
  DIRECT_UPLOAD_MAX,
  createConnections,
  errorLine,
  redirectResult,
  statusLabel
} from "./shared.js";
export {
  Connections,
  ConnectionsError,
  DIRECT_UPLOAD_MAX,
  createConnections,
  errorLine,
  redirectResult,
  statusLabel
};
