import {
  Connections,
  ConnectionsError,
  DIRECT_UPLOAD_MAX,
  createConnections,
  redirectResult,
  statusLabel
} from "./shared.js";
export {
  Connections,
  ConnectionsError,
  DIRECT_UPLOAD_MAX,
  createConnections,
  redirectResult,
  statusLabel
};
