// For transports that carry many agent connections over one stream (the microvm driver's
// virtio-serial link): the same multiplexer one level up, each channel a whole connection.
export type { Channel, ChannelHost, ControlMessage } from "./channel.js";
export { ChannelSocket } from "./channel-socket.js";
export type { ConnectAgentOptions } from "./connect.js";
export { connectAgent } from "./connect.js";
export { duplexPair } from "./duplex-pair.js";
export { WINDOW_BYTES } from "./flow-control.js";
export { AGENT_VERSION, CAPABILITIES } from "./hello.js";
export type { IdentityLauncherOptions } from "./identity-launcher.js";
export { identityLauncher } from "./identity-launcher.js";
export { createInProcessAgent } from "./in-process.js";
export type { MuxHandlers, MuxSide } from "./mux.js";
export { Mux } from "./mux.js";
export type { AgentServer, AgentServerOptions } from "./server.js";
export { createAgentServer } from "./server.js";
