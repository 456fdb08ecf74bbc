/** Table shapes as Kysely sees them. Timestamps are epoch ms; JSON columns are text. */
import type { Generated } from "kysely";

export interface UsersTable {
  id: string;
  name: string;
  role: string;
  password_hash: string | null;
  created_at: number | string;
  egress_proxy?: string | null;
  network_default?: string | null;
}

export interface ApiKeysTable {
  id: string;
  user_id: string;
  name: string;
  key_hash: string;
  prefix: string;
  created_at: number | string;
  last_used_at: number | string | null;
  expires_at?: number | string | null;
}

export interface UserIdentitiesTable {
  issuer: string;
  subject: string;
  user_id: string;
  created_at: number | string;
}

export interface AuditEventsTable {
  /** int8 on Postgres, which arrives as a string. */
  id: Generated<number | string>;
  at: number | string;
  action: string;
  outcome: string;
  actor_id: string | null;
  actor_name: string | null;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  details: string;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  token_hash: string;
  created_at: number | string;
  last_seen_at: number | string;
  expires_at: number | string;
}

export interface SandboxesTable {
  id: string;
  user_id: string;
  name?: string | null;
  state: string;
  failure_reason: string | null;
  driver: string;
  handle: string | null;
  cpu: number;
  memory_mb: number;
  disk_mb: number;
  pids_max: number;
  network: string;
  egress_policy?: string | null;
  env: string;
  metadata: string;
  timeout_ms: number | string;
  idle_timeout_ms: number | string;
  created_at: number | string;
  updated_at: number | string;
  state_changed_at: number | string;
  last_activity_at: number | string;
  expires_at: number | string;
  destroyed_at: number | string | null;
  image?: string | null;
  node?: string | null;
}

export interface EgressPresetsTable {
  name: string;
  description: string;
  allow: string;
  deny: string;
  created_at: number | string;
  updated_at: number | string;
}

export interface EgressAuditTable {
  id: Generated<number | string>;
  sandbox_id: string;
  at: number | string;
  kind: string;
  host: string | null;
  address: string;
  port: number;
  decision: string;
  reason: string;
  bytes_out: number | string;
  bytes_in: number | string;
  duration_ms: number | string;
}

export interface SandboxLogsTable {
  /** int8 on Postgres, which arrives as a string. */
  id: Generated<number | string>;
  sandbox_id: string;
  at: number | string;
  level: string;
  source: string;
  message: string;
}

export interface CredentialsTable {
  id: string;
  user_id: string;
  provider: string;
  kind: string;
  sealed: string;
  key_id: string;
  metadata: string;
  created_at: number | string;
  updated_at: number | string;
  last_used_at: number | string | null;
  last_validated_at: number | string | null;
  valid: number | null;
}

export interface GatewayTokensTable {
  token_hash: string;
  sandbox_id: string;
  user_id: string;
  created_at: number | string;
}

export interface UsageTable {
  id: Generated<number | string>;
  user_id: string;
  sandbox_id: string;
  provider: string;
  model: string;
  /** int8 on Postgres (migration 009), which arrives as a string. */
  input_tokens: number | string;
  output_tokens: number | string;
  status: number;
  at: number | string;
}

/** Usage folded per user, provider, model and hour (migration 019); int8 columns. */
export interface UsageHourlyTable {
  user_id: string;
  provider: string;
  model: string;
  hour: number | string;
  requests: number | string;
  input_tokens: number | string;
  output_tokens: number | string;
}

export interface RunsTable {
  id: string;
  user_id: string;
  sandbox_id: string;
  group_id: string | null;
  agent: string;
  prompt: string;
  model: string | null;
  cwd: string;
  state: string;
  exit_reason: string | null;
  final_text: string | null;
  /** int8 on Postgres (migration 009), which arrives as a string. */
  input_tokens: number | string;
  output_tokens: number | string;
  timeout_ms: number | string;
  max_turns: number | null;
  created_at: number | string;
  started_at: number | string | null;
  ended_at: number | string | null;
}

export interface RunEventsTable {
  run_id: string;
  seq: number;
  at: number | string;
  body: string;
  raw: string | null;
}

/** Migration 013: `body` is the JSON of a RunChangesRecord without its runId and recordedAt. */
export interface RunChangesTable {
  run_id: string;
  body: string;
  recorded_at: number | string;
}

/** Migration 016: `events` is a JSON array of event types. */
export interface WebhooksTable {
  id: string;
  user_id: string;
  url: string;
  events: string;
  sealed_secret: string;
  created_at: number | string;
}

export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  user_id: string;
  event: string;
  event_key: string;
  payload: string;
  state: string;
  attempts: number;
  next_attempt_at: number | string | null;
  last_status: number | null;
  last_error: string | null;
  created_at: number | string;
  updated_at: number | string;
}

/** Migration 016: `args`, `env_names` and `header_names` are JSON arrays of strings. */
export interface McpServersTable {
  id: string;
  user_id: string;
  name: string;
  transport: string;
  command: string | null;
  args: string;
  url: string | null;
  env_names: string;
  header_names: string;
  sealed: string | null;
  created_at: number | string;
}

/** Migration 014: a run's change kept in its project; merged/pushed are 0 or 1. */
export interface RunKeepsTable {
  run_id: string;
  group_id: string | null;
  branch: string;
  commit_sha: string;
  merged: number;
  pushed: number;
  pull_request_url: string | null;
  kept_at: number | string;
}

/** Migration 015: what a run needs for its next turn (see RunConversationRecord). */
export interface RunConversationsTable {
  run_id: string;
  turns: number;
  session_id: string | null;
  history: string | null;
  event_bytes: number | string;
  mcp_servers: string | null;
  updated_at: number | string;
}

export interface Database {
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  mcp_servers: McpServersTable;
  runs: RunsTable;
  run_changes: RunChangesTable;
  run_keeps: RunKeepsTable;
  run_conversations: RunConversationsTable;
  run_events: RunEventsTable;
  credentials: CredentialsTable;
  gateway_tokens: GatewayTokensTable;
  usage: UsageTable;
  usage_hourly: UsageHourlyTable;
  users: UsersTable;
  api_keys: ApiKeysTable;
  sessions: SessionsTable;
  sandboxes: SandboxesTable;
  sandbox_logs: SandboxLogsTable;
  egress_presets: EgressPresetsTable;
  egress_audit: EgressAuditTable;
  images: ImagesTable;
  image_layers: ImageLayersTable;
  user_identities: UserIdentitiesTable;
  audit_events: AuditEventsTable;
  plans: PlansTable;
  user_plans: UserPlansTable;
  job_runs: JobRunsTable;
  nodes: NodesTable;
  logins: LoginsTable;
}

export interface LoginsTable {
  id: string;
  user_id: string;
  provider: string;
  sandbox_id: string;
  node: string;
  /** 1 or 0. */
  owns_sandbox: number;
  state: string;
  reason: string | null;
  created_at: number | string;
  updated_at: number | string;
}

export interface NodesTable {
  name: string;
  url: string;
  /** JSON array of driver names. */
  drivers: string;
  cpu_count: number;
  memory_mb: number | string;
  running_sandboxes: number;
  reserved_memory_mb: number | string;
  started_at: number | string;
  refreshed_at: number | string;
  expires_at: number | string;
}

export interface JobRunsTable {
  job: string;
  scope: string;
  node: string;
  outcome: string;
  error: string | null;
  started_at: number | string;
  ended_at: number | string | null;
}

export interface PlansTable {
  name: string;
  description: string;
  limits: string;
  created_at: number | string;
  updated_at: number | string;
}

export interface UserPlansTable {
  user_id: string;
  plan_name: string;
  assigned_at: number | string;
}

export interface ImagesTable {
  id: string;
  owner_id: string | null;
  scope: string;
  name: string;
  digest: string | null;
  state: string;
  layers: string;
  config: string;
  size_bytes: number | string;
  source: string;
  build_log: string;
  error: string | null;
  created_at: number | string;
  updated_at: number | string;
}

export interface ImageLayersTable {
  id: string;
  dir: string;
  size_bytes: number | string;
  created_at: number | string;
}
