/** What the test-network fixture and its test host (test-network-server.ts) say over their IPC channel. */

/** One HTTP or HTTPS request that reached the test host. */
export interface TestNetworkRequest {
  protocol: "http" | "https";
  method: string;
  /** The Host header as sent. */
  host: string;
  path: string;
  /** Who connected, as the test host saw it (after any NAT). */
  remoteAddress: string;
  /** The TLS server name the client sent (HTTPS only; null without SNI or over HTTP). */
  sni: string | null;
}

/** One DNS question the test host was asked (lowercased, without the trailing dot). */
export interface TestNetworkDnsQuery {
  name: string;
  type: string;
  transport: "udp" | "tcp";
  remoteAddress: string;
}

/** One datagram the UDP echo port received. */
export interface TestNetworkDatagram {
  remoteAddress: string;
  bytes: number;
}

export interface TestNetworkServerConfig {
  zone: Record<string, string[]>;
  certPem: string;
  keyPem: string;
  httpPort: number;
  httpsPort: number;
  dnsPort: number;
  udpEchoPort: number;
}

export type TestNetworkControl =
  | { type: "start"; config: TestNetworkServerConfig }
  | { type: "records"; id: number }
  | { type: "zone"; id: number; zone: Record<string, string[]> };

export type TestNetworkReply =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | {
      type: "records";
      id: number;
      requests: TestNetworkRequest[];
      dnsQueries: TestNetworkDnsQuery[];
      datagrams: TestNetworkDatagram[];
    }
  | { type: "zone-set"; id: number };
