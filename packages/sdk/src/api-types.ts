// Generated from the server's route schemas by packages/sdk/scripts/generate-types.ts. Do not edit.
export interface paths {
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: the server answers and its database is reachable */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {string} */
                            status: "ok";
                            driver: string;
                            /** @description what the default sandbox driver can do, e.g. "egress", "durable" (stop/start), "fork" */
                            features: string[];
                            /** @description every driver this server runs; a create picks one with "driver" */
                            drivers: {
                                name: string;
                                features: string[];
                                default: boolean;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/auth/session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The signed-in user and CSRF token of the session cookie */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Session"];
                    };
                };
            };
        };
        put?: never;
        /** Sign in with a user name and password, an API key, or an OIDC issuer's token; sets the session cookie */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name: string;
                        password: string;
                    } | {
                        apiKey: string;
                    } | {
                        /** @description a JWT of an issuer in POLYDEV_OIDC_ISSUERS (an ID or access token) */
                        idToken: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Session"];
                    };
                };
            };
        };
        /** Sign out: ends the session and expires its cookie */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description signed out */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/me/password": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set your own dashboard password (currentPassword is required once one is set) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        currentPassword?: string;
                        password: string;
                    };
                };
            };
            responses: {
                /** @description password changed; your other sessions are signed out */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List users */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: string;
                                name: string;
                                /** @enum {string} */
                                role: "admin" | "user";
                                createdAt: string;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create a user, its first API key (shown once) and optionally a dashboard password */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name: string;
                        /**
                         * @default user
                         * @enum {string}
                         */
                        role?: "admin" | "user";
                        /** @description dashboard password; without one the user signs in with an API key */
                        password?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            user: {
                                id: string;
                                name: string;
                                /** @enum {string} */
                                role: "admin" | "user";
                                createdAt: string;
                            };
                            apiKey: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/me": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Who this API key belongs to, and the proxy (if any) your provider traffic goes through */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: string;
                            name: string;
                            /** @enum {string} */
                            role: "admin" | "user";
                            egressProxy: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/users/{id}/proxy": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Pin an HTTP(S) proxy to a user's provider traffic (null: the server's default) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        proxyUrl: string | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            id: string;
                            egressProxy: string | null;
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/me/keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your API keys (never their secrets) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["ApiKey"][];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create an API key; its secret is in this answer only */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name: string;
                        /**
                         * Format: date-time
                         * @description when the key stops working; default: never
                         */
                        expiresAt?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            key: components["schemas"]["ApiKey"];
                            /** @description the secret; shown once */
                            apiKey: string;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/me/keys/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revoke one of your API keys; requests with it answer 401 from now on */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description revoked */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Security-relevant actions (sign-ins, keys, passwords, credentials, users, roles), newest first */
        get: {
            parameters: {
                query?: {
                    action?: "sign_in" | "sign_out" | "api_key.create" | "api_key.revoke" | "password.change" | "credential.add" | "credential.remove" | "user.create" | "user.role_change" | "oidc.provision" | "admin.sandbox_action";
                    outcome?: "success" | "failure";
                    actorId?: string;
                    targetId?: string;
                    since?: string;
                    until?: string;
                    cursor?: string;
                    limit?: number;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["AuditEvent"][];
                            nextCursor: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/jobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Each background job's last run: cluster-wide jobs once, per-node jobs per node (node names who ran it) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["JobRun"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/network": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A sandbox's network: its mode and, for an allow-list, its rules and the effective ones */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["SandboxNetwork"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /** Change an allow-list sandbox's rules; the next connection follows them, no restart */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @description allow rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                        allow?: string[];
                        /** @description deny rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                        deny?: string[];
                        presets?: string[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["SandboxNetwork"];
                    };
                };
            };
        };
        trace?: never;
    };
    "/v1/sandboxes/{id}/network/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The sandbox's egress decisions, newest first (the last 2000 are kept) */
        get: {
            parameters: {
                query?: {
                    limit?: number;
                    /** @description the id of the oldest event you have */
                    before?: number;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            events: components["schemas"]["EgressAuditEvent"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/network/audit/stream": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The sandbox's egress decisions as they happen (Server-Sent Events, event `egress`) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/network-presets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Named allow-lists an admin defines, usable in an allow-list network's presets */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            presets: components["schemas"]["NetworkPreset"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/network-presets/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Create or replace a network preset; sandboxes naming it follow at their next connection */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    name: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        description?: string;
                        /** @description allow rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                        allow: string[];
                        /** @description deny rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                        deny?: string[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["NetworkPreset"];
                    };
                };
            };
        };
        post?: never;
        /** Delete a network preset (409 while a live sandbox or a user's default names it) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/users/{id}/network-default": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The network a user's sandboxes get when a create names none (null: none) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            network: ({
                                /** @enum {string} */
                                mode: "none" | "egress";
                            } | {
                                allow: string[];
                                deny: string[];
                                presets: string[];
                                /** @enum {string} */
                                mode: "allowlist";
                            }) | null;
                        };
                    };
                };
            };
        };
        /** Set the network a user's sandboxes get when a create names none */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        network: (("none" | "egress" | "allowlist") | ({
                            /** @enum {string} */
                            mode: "none";
                        } | {
                            /** @enum {string} */
                            mode: "egress";
                        } | {
                            /** @description allow rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                            allow: string[];
                            /** @description deny rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                            deny?: string[];
                            /** @description names of admin-defined presets whose rules are added */
                            presets?: string[];
                            /** @enum {string} */
                            mode: "allowlist";
                        })) | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            network: ({
                                /** @enum {string} */
                                mode: "none" | "egress";
                            } | {
                                allow: string[];
                                deny: string[];
                                presets: string[];
                                /** @enum {string} */
                                mode: "allowlist";
                            }) | null;
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Prometheus metrics (admin) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/sandboxes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Every user's sandboxes with their owner, newest first */
        get: {
            parameters: {
                query?: {
                    limit?: number;
                    /** @description the nextCursor of the previous page */
                    cursor?: string;
                    state?: "creating" | "running" | "hibernated" | "stopped" | "destroying" | "destroyed" | "failed";
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["AdminSandbox"][];
                            nextCursor: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Users, sandboxes by state, runs per hour and provider usage over the last 24 hours */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["AdminStats"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/sandboxes/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Any user's sandbox, with its owner */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["AdminSandbox"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Destroy any user's sandbox (idempotent); its log names the admin who did */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["AdminSandbox"];
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/sandboxes/{id}/logs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Any user's sandbox's lifecycle log (the newest 500 entries' oldest first) */
        get: {
            parameters: {
                query?: {
                    afterId?: number;
                    limit?: number;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                at: string;
                                level: string;
                                source: string;
                                message: string;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List your sandboxes, newest first */
        get: {
            parameters: {
                query?: {
                    limit?: number;
                    /** @description the nextCursor of the previous page */
                    cursor?: string;
                    state?: "creating" | "running" | "hibernated" | "stopped" | "destroying" | "destroyed" | "failed";
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["Sandbox"][];
                            nextCursor: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        /** Create a sandbox */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["CreateSandboxInput"];
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a sandbox */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Destroy a sandbox (idempotent) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        options?: never;
        head?: never;
        /** Grow a sandbox's disk (running, hibernated or stopped) */
        patch: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["UpdateSandboxInput"];
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        trace?: never;
    };
    "/v1/sandboxes/{id}/hibernate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Freeze every process of a sandbox */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/resume": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Thaw a hibernated sandbox */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/stop": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * End every process of a sandbox and keep its disk (drivers with the durable feature)
         * @description Running or hibernated → stopped. A stopped sandbox is started again by POST …/start or by anything that needs it running (exec, terminal, files, processes, runs). Idempotent.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/start": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Start a stopped sandbox from its disk (a hibernated one is resumed) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Sandbox"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/fork": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Make new sandboxes whose disks start as copy-on-write copies of this one's
         * @description All or none. Each new sandbox has the same limits, network (allow-list included), environment, metadata and timeouts, and counts against your sandbox limit.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["ForkSandboxInput"];
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            sandboxes: components["schemas"]["Sandbox"][];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/snapshots": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Turn the sandbox's disk, as it is now, into an image others can start from
         * @description The new image is the sandbox's image plus one layer of its changes, copied on write; the sandbox keeps running. Start from it with POST /v1/sandboxes {"image": "<name>"}.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @description the new image's name */
                        name: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Image"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/logs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lifecycle and console logs; kept after a sandbox fails */
        get: {
            parameters: {
                query?: {
                    afterId?: number;
                    limit?: number;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                id: number;
                                at: string;
                                level: string;
                                source: string;
                                message: string;
                            }[];
                            console: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Live CPU, memory, process and disk use */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            cpuUsageNs: number;
                            memoryBytes: number;
                            memoryLimitBytes: number;
                            pids: number;
                            diskBytes: number;
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/exec": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Run a command; with Accept: text/event-stream the output streams as stdout/stderr/exit events */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["ExecRequestInput"];
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ExecResult"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/processes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List background processes */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["BackgroundProcess"][];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Start a background process; its output is kept and can be reattached to */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        cmd: string | string[];
                        cwd?: string;
                        env?: {
                            [key: string]: string;
                        };
                        /** @description who runs it: "user" (the default in polydev/base), "root", another user of the image, or a uid */
                        user?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["BackgroundProcess"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/processes/{pid}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a background process */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                    /** @description a background process id (proc_…) */
                    pid: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["BackgroundProcess"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/processes/{pid}/output": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Reattach to a process's combined output from a byte offset; raw bytes, or `output`/`exit` events with Accept: text/event-stream. A followed raw stream that fails midway (the sandbox stopped) ends without its last chunk; an event stream ends with an `error` event */
        get: {
            parameters: {
                query?: {
                    offset?: number;
                    follow?: "true" | "false";
                };
                header?: never;
                path: {
                    id: string;
                    /** @description a background process id (proc_…) */
                    pid: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/processes/{pid}/signal": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Send a signal to a background process (default SIGTERM) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                    /** @description a background process id (proc_…) */
                    pid: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /**
                         * @default SIGTERM
                         * @enum {string}
                         */
                        signal?: "SIGTERM" | "SIGKILL" | "SIGINT" | "SIGHUP" | "SIGQUIT" | "SIGUSR1" | "SIGUSR2" | "SIGSTOP" | "SIGCONT";
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["BackgroundProcess"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/files": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List a directory under the home */
        get: {
            parameters: {
                query?: {
                    /** @description relative to the home of the sandbox's default user (its agent's hello says which) */
                    path?: string;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            path: string;
                            items: components["schemas"]["FileEntry"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Remove a file, or a directory with recursive=true */
        delete: {
            parameters: {
                query: {
                    /** @description relative to the home of the sandbox's default user (its agent's hello says which) */
                    path: string;
                    recursive?: "true" | "false";
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {boolean} */
                            ok: true;
                        };
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/files/stat": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Stat a path under the home */
        get: {
            parameters: {
                query: {
                    /** @description relative to the home of the sandbox's default user (its agent's hello says which) */
                    path: string;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["FileEntry"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/files/content": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Download a file (streamed) */
        get: {
            parameters: {
                query: {
                    /** @description relative to the home of the sandbox's default user (its agent's hello says which) */
                    path: string;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        /** Upload a file (raw body, streamed); replaces an existing file atomically */
        put: {
            parameters: {
                query: {
                    /** @description relative to the home of the sandbox's default user (its agent's hello says which) */
                    path: string;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            path: string;
                            sizeBytes: number;
                        };
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/files/mkdir": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create a directory (with parents by default) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @description relative to the home of the sandbox's default user (its agent's hello says which) */
                        path: string;
                        /** @default true */
                        parents?: boolean;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {boolean} */
                            ok: true;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/files/rename": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Move or rename a file or directory under the home (a symlink itself, not its target) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @description relative to the home */
                        from: string;
                        /** @description relative to the home; a file or empty directory there is replaced */
                        to: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {boolean} */
                            ok: true;
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/pty": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Interactive terminal (WebSocket upgrade)
         * @description Upgrade to a WebSocket (`Connection: Upgrade`, `Upgrade: websocket`). Binary frames carry terminal bytes both ways; text frames carry JSON control messages: in `{type:'resize',cols,rows}`, `{type:'input',data}`, `{type:'ping'}`; out `{type:'ready',reconnectId,reattached}`, `{type:'exit',exitCode,signal}`, `{type:'error',message}`, `{type:'pong'}`. A request without the upgrade answers 426.
         */
        get: {
            parameters: {
                query?: {
                    /** @description terminal width in columns */
                    cols?: number;
                    /** @description terminal height in rows */
                    rows?: number;
                    /** @description who runs it: "user" (the default in polydev/base), "root", another user of the image, or a uid */
                    user?: string;
                    /** @description client-made id; connecting again with it reattaches to the same shell */
                    reconnect?: string;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Switching Protocols: the WebSocket carrying the terminal is open */
                101: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                /** @description the request was not a WebSocket upgrade */
                426: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/credentials/{provider}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Store an API key (encrypted; never shown again) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    provider: "anthropic" | "openai" | "gemini";
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        apiKey: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Credential"];
                    };
                };
            };
        };
        post?: never;
        /** Delete a credential */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    provider: "anthropic" | "openai" | "gemini";
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {boolean} */
                            ok: true;
                        };
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/credentials": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your credentials (metadata only) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["Credential"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/credentials/{provider}/validate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Ask the provider whether the stored credential works */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    provider: "anthropic" | "openai" | "gemini";
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Credential"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/usage": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Gateway usage by provider and model (requests, input and output tokens) */
        get: {
            parameters: {
                query?: {
                    since?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: {
                                provider: string;
                                model: string;
                                requests: number;
                                inputTokens: number;
                                outputTokens: number;
                            }[];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/gateway": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Open the provider gateway inside the sandbox (its tools use the base URLs in their env) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            port: number;
                            baseUrls: {
                                [key: string]: string;
                            };
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/logins": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your logins, newest first (the last 100). With replicas, url and userCode are shown only by the server running the login; GET /v1/logins/:id always has them */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["Login"][];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Start a provider's own CLI login inside your sandbox; answers once the sign-in URL is known */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @enum {string} */
                        provider: "claude" | "codex" | "gemini";
                        /** @description default: a new sandbox with egress, removed afterwards */
                        sandboxId?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Login"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/logins/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A login's state */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Login"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Cancel a login */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Login"];
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/logins/{id}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** State changes as server-sent `state` events */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/logins/{id}/code": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Finish a login: the code the provider showed, or the localhost URL the browser ended on */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        code?: string;
                        callbackUrl?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Login"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your runs, newest first; with groupId, the runs of that group */
        get: {
            parameters: {
                query?: {
                    limit?: number;
                    /** @description the nextCursor of the previous page */
                    cursor?: string;
                    /** @description only the runs of this group (the groupId POST /v1/runs answered) */
                    groupId?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["Run"][];
                            nextCursor: string | null;
                        };
                    };
                };
            };
        };
        put?: never;
        /** Run a prompt with one agent (agent) or several side by side (agents) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @enum {string} */
                        agent?: "claude" | "codex" | "gemini" | "builtin";
                        agents?: ("claude" | "codex" | "gemini" | "builtin")[];
                        prompt: string;
                        /** @description default: your default sandbox, created if needed */
                        sandboxId?: string;
                        model?: string;
                        /** @description relative to the home */
                        cwd?: string;
                        /** @default 1800000 */
                        timeoutMs?: number;
                        maxTurns?: number;
                        /** @description a command run before the agent, in its working directory (e.g. npm ci) */
                        setup?: {
                            command: string;
                            /** @description rules added to an allow-list sandbox's own while the setup command runs */
                            network?: {
                                /** @description allow rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                                allow: string[];
                                /** @description deny rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                                deny?: string[];
                                /** @description names of admin-defined presets whose rules are added */
                                presets?: string[];
                            };
                        };
                        /** @description a folder holding a git repository (e.g. projects/app); a group's agents each work in a copy. Default for a group: the sandbox's only project */
                        project?: string;
                        /** @description run in the agent's copy when the run ends (e.g. npm test); default: the project's check */
                        check?: string;
                        /** @description which of your MCP servers the agents get: all (default), none (false), or those named */
                        mcpServers?: false | string[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Run"] | {
                            groupId: string;
                            runs: components["schemas"]["Run"][];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A run: state, timings, usage, final text */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Run"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Stop the agent and everything it started */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Run"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Server-sent events (status, text, tool_call, tool_result, usage, error, done; user opens a follow-up's turn), each with its sequence id; reconnect with Last-Event-ID. A done ends a turn: the stream ends once the run has ended and nothing follows */
        get: {
            parameters: {
                query?: {
                    after?: number;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/messages": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Send a follow-up to a finished run: its agent continues the same session in the same sandbox and folder, as the run's next turn */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        prompt: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                202: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["RunTurn"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/groups/{groupId}/messages": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Send the same follow-up to every run of a group; refused as a whole while any of them is still working */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    groupId: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        prompt: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                202: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            groupId: string;
                            turns: components["schemas"]["RunTurn"][];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/projects": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The sandbox's projects (git repositories under projects/) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["Project"][];
                        };
                    };
                };
            };
        };
        put?: never;
        /** Clone a git repository into the sandbox (the clone runs inside it, over its egress, or through the server's relay when you stored a git credential for its host: PUT /v1/git-credentials/{host}), or make an existing folder a project */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        url: string;
                        ref?: string;
                        name?: string;
                        check?: string;
                    } | {
                        path: string;
                        name?: string;
                        check?: string;
                    } | {
                        archive: string;
                        name?: string;
                        check?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Project"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/changes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What a run in a project changed: diff against its base commit, changed files, check result */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["RunChanges"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/keep": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** How a run's change was kept (404 while it was not) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["RunKeep"];
                    };
                };
            };
        };
        put?: never;
        /** Keep a finished run's change: commit it on a branch in the original project, fast-forward or merge, optionally push and open a pull request */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @description default polydev/<first 8 characters of the run id> */
                        branch?: string;
                        message?: string;
                        /** @description push the branch to the project's origin, from the sandbox */
                        push?: boolean;
                        /** @description open a pull request (GitHub) or merge request (GitLab); needs push and a git credential */
                        pullRequest?: {
                            title?: string;
                            body?: string;
                            /** @description default: the project's current branch */
                            base?: string;
                        };
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            runId: string;
                            /** @description the branch holding the run's change, in the original project */
                            branch: string;
                            commit: string;
                            /** @description the project's current branch was fast-forwarded or merged to it */
                            merged: boolean;
                            pushed: boolean;
                            pullRequestUrl: string | null;
                            keptAt: string;
                            /** @description runs of the same group kept before this one (allowed, and reported) */
                            otherKeptRuns: string[];
                        };
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/git-credentials/{host}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Store a git host's token (encrypted; never shown again, never enters a sandbox): used to clone and push through the server's relay and to open pull requests */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    host: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        token: string;
                        /** @description sent with the token over HTTP; default oauth2 */
                        username?: string;
                        /**
                         * @description default: by host (github.com, gitlab.com)
                         * @enum {string}
                         */
                        forge?: "github" | "gitlab";
                        /**
                         * Format: uri
                         * @description the forge's REST API base; default https://api.github.com, https://<host>/api/v3 or /api/v4
                         */
                        apiUrl?: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["GitCredential"];
                    };
                };
            };
        };
        post?: never;
        /** Delete a git credential */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    host: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {boolean} */
                            ok: true;
                        };
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/git-credentials": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your git credentials (metadata only) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["GitCredential"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Stream the caller's events (SSE, or WebSocket on upgrade)
         * @description The caller's events, as `text/event-stream` or, with a WebSocket upgrade on the same URL, one JSON text frame per event. Every event is `{id, type, at, userId, data}`: `sandbox.state` (`data: {sandboxId, name, state, previous, reason}`; reason set when failed), `run.finished` (`{runId, sandboxId, agent, state, exitReason}`), `login.finished` (`{loginId, provider, state, reason}`), `quota.reached` (`{limit, used, max}`). SSE events carry the id (`id:`) and the type (`event:`). Resume with `Last-Event-ID` or `?after=<id>`; an id older than what is retained resumes at the oldest retained event. A client that reads too slowly is disconnected (resume then); each user may hold a limited number of streams (429 `too_many_streams`).
         */
        get: {
            parameters: {
                query?: {
                    /** @description admins: 1 streams every user's events (default: the caller's own) */
                    all?: "0" | "1" | "true" | "false";
                    /** @description resume after this event id (as the Last-Event-ID header does) */
                    after?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description text/event-stream */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": string;
                    };
                };
                /** @description the user holds as many streams as allowed */
                429: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/plans": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List plans with how many users are on each */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["Plan"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/plans/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Create or replace a plan; the one named "default" applies to users put on no plan */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    name: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @default  */
                        description?: string;
                        limits: components["schemas"]["PlanLimitsInput"];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Plan"];
                    };
                };
            };
        };
        post?: never;
        /** Delete a plan nobody is on (409 while users are) */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                /** @description Default Response */
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/users/{id}/plan": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Put a user on a plan, or (null) back on the default plan */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        plan: string | null;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Quota"];
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/users/{id}/quota": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A user's plan, its limits and what the user uses of them */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Quota"];
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/me/quota": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your plan, its limits and what you use of them */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Quota"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/images": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your images and the system images, by name */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            images: components["schemas"]["Image"][];
                        };
                    };
                };
            };
        };
        put?: never;
        /**
         * Build an image from a Dockerfile, or pull one from a registry (answers at once, in building)
         * @description JSON {"name", "dockerfile", "buildArgs"?} builds (FROM an image in the store; COPY needs a context); JSON {"name", "pull"} pulls from a registry; a tar body (Content-Type: application/x-tar) with ?name= builds from the Dockerfile and files it holds. Follow GET /v1/images/{name}/log?follow=true; the image becomes ready or failed.
         */
        post: {
            parameters: {
                query?: {
                    name?: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                202: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Image"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/images/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An image: its state, layers, config and build log */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the image name, URL-encoded (alice%2Fnode%3A1) */
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ImageDetail"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        /** Delete your image; 409 image_in_use while a sandbox made from it exists */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the image name, URL-encoded (alice%2Fnode%3A1) */
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description deleted */
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/images/{name}/log": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The build or pull log as text; with follow=true, streamed until the build ends */
        get: {
            parameters: {
                query?: {
                    /** @description keep the answer open and stream the build's output until it ends */
                    follow?: "0" | "1" | "true" | "false";
                };
                header?: never;
                path: {
                    /** @description the image name, URL-encoded (alice%2Fnode%3A1) */
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/images/{name}/tag": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Give a ready image another name (the same digest and layers) */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description the image name, URL-encoded (alice%2Fnode%3A1) */
                    name: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        /** @description the new name */
                        name: string;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Image"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhooks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your webhooks (never their secrets) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["Webhook"][];
                        };
                    };
                };
            };
        };
        put?: never;
        /**
         * Register a webhook (its signing secret is answered only now)
         * @description When a run or a group of runs ends, Polydev POSTs a JSON event to the URL, signed with the secret answered here once (header `Polydev-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; see docs/webhooks.md). Events: `run.finished` (every run's end), `run.failed` (failed or timed out), `group.finished` (every run of a group ended), `group.failed` (a group ended with a failed run); default all. Failed deliveries are retried with exponential back-off. URLs on loopback, private or link-local addresses are refused (403 `destination_refused`) unless the operator allows them.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        url: string;
                        events?: ("run.finished" | "run.failed" | "group.finished" | "group.failed")[];
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["CreatedWebhook"];
                    };
                };
                /** @description the URL resolves to an address webhooks may not reach */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                /** @description the user has as many webhooks as allowed */
                429: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhooks/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Delete a webhook and its delivery log */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {boolean} */
                            ok: true;
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhooks/{id}/deliveries": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A webhook's deliveries, newest first: state, attempts, last answer */
        get: {
            parameters: {
                query?: {
                    limit?: number;
                };
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["WebhookDelivery"][];
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/mcp-servers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Your MCP servers (secret values never answered) */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["McpServer"][];
                        };
                    };
                };
            };
        };
        put?: never;
        /**
         * Configure an MCP server for your agents
         * @description Either `command` (+ `args`, `env`): a stdio server the agent starts inside the run's sandbox (the command must exist there), or `url` (+ `transport` http (default) or sse, `headers`): a server the agent reaches from the sandbox. Env and header values are stored encrypted and written only into the run's config file in the sandbox. Claude Code gets them with --mcp-config, Codex in ~/.codex/config.toml (stdio and http only), Gemini in ~/.gemini/settings.json. A run takes all of them unless it says `mcpServers: false` or lists the names it wants.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        name: string;
                        command?: string;
                        args?: string[];
                        env?: {
                            [key: string]: string;
                        };
                        url?: string;
                        /** @enum {string} */
                        transport?: "http" | "sse";
                        headers?: {
                            [key: string]: string;
                        };
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["McpServer"];
                    };
                };
                /** @description the name is taken */
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                /** @description Default Response */
                429: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/mcp-servers/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Delete an MCP server */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {boolean} */
                            ok: true;
                        };
                    };
                };
                /** @description Default Response */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/ports": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The TCP ports listening in the sandbox (on any address), with the process when known */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            items: components["schemas"]["ListeningPort"][];
                        };
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sandboxes/{id}/ports/{port}/preview-link": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A short-lived signed link opening the port in a browser, on the separate preview origin; share links may be opened by anyone holding them until they expire */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    id: string;
                    port: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        expiresIn?: number;
                        share?: boolean;
                    };
                };
            };
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["PreviewLink"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/images/import": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Import an OCI image layout or docker-archive tar (the body, streamed; not gzipped) */
        post: {
            parameters: {
                query: {
                    /** @description lowercase path components and an optional tag, e.g. "alice/node:1"; "polydev/…" is reserved */
                    name: string;
                };
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Default Response */
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Image"];
                    };
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        SandboxNetworkInput: {
            allow: string[];
            deny: string[];
            presets: string[];
            /** @enum {string} */
            mode: "none" | "egress" | "allowlist";
            effective: {
                allow: string[];
                deny: string[];
            };
        };
        NetworkPresetInput: {
            name: string;
            description: string;
            allow: string[];
            deny: string[];
        };
        EgressAuditEventInput: {
            id: number;
            at: string;
            /** @enum {string} */
            kind: "tcp" | "dns";
            host: string | null;
            address: string;
            port: number;
            /** @enum {string} */
            decision: "allowed" | "denied";
            reason: string;
            bytesOut: number;
            bytesIn: number;
            durationMs: number;
        };
        ErrorInput: {
            error: {
                code: string;
                message: string;
                details?: {
                    [key: string]: unknown;
                };
            };
        };
        SandboxInput: {
            id: string;
            name: string | null;
            /** @description the digest of the image it was made from; null for a host view */
            image: string | null;
            /** @enum {string} */
            state: "creating" | "running" | "hibernated" | "stopped" | "destroying" | "destroyed" | "failed";
            failureReason: string | null;
            driver: string;
            cpu: number;
            memoryMb: number;
            diskMb: number;
            pidsMax: number;
            /** @enum {string} */
            network: "none" | "egress" | "allowlist";
            egressPolicy: {
                allow: string[];
                deny: string[];
                presets: string[];
            } | null;
            envKeys: string[];
            metadata: {
                [key: string]: string;
            };
            timeoutMs: number;
            idleTimeoutMs: number;
            createdAt: string;
            expiresAt: string;
            lastActivityAt: string;
            stateChangedAt: string;
            /** @description the server (node) that hosts it among replicas; null for sandboxes made before nodes */
            node: string | null;
        };
        ForkSandboxInput: {
            /**
             * @description how many sandboxes to make (1 … 16); default 1
             * @default 1
             */
            count: number;
            /** @description one name per new sandbox, in order; default: unnamed */
            names?: string[];
        };
        ExecRequestInput: {
            /** @description a shell line ("ls -la | wc -l") or an argv array (["ls", "-la"]) */
            cmd: string | string[];
            /** @description relative to the home, or absolute inside the sandbox */
            cwd?: string;
            env?: {
                [key: string]: string;
            };
            /** @description who runs it: "user" (the default in polydev/base), "root", another user of the image, or a uid */
            user?: string;
            /** @description text written to the process's stdin, then closed */
            stdin?: string;
            /** @description kill the command after this long */
            timeoutMs?: number;
        };
        ExecResultInput: {
            exitCode: number | null;
            signal: string | null;
            timedOut: boolean;
            durationMs: number;
            stdout: string;
            stderr: string;
            truncated: boolean;
        };
        BackgroundProcessInput: {
            id: string;
            argv: string[];
            startedAt: string;
            /** @enum {string} */
            state: "running" | "exited";
            exitCode: number | null;
            signal: string | null;
            outputBytes: number;
        };
        FileEntryInput: {
            name: string;
            path: string;
            /** @enum {string} */
            type: "file" | "directory" | "symlink" | "other";
            sizeBytes: number;
            modifiedAt: string;
            mode: number;
        };
        SessionInput: {
            user: {
                id: string;
                name: string;
                /** @enum {string} */
                role: "admin" | "user";
            };
            /** @description send it as the x-csrf-token header on every POST, PUT, PATCH and DELETE */
            csrfToken: string;
        };
        AuditEventInput: {
            id: number;
            at: string;
            action: string;
            /** @enum {string} */
            outcome: "success" | "failure";
            actorId: string | null;
            actorName: string | null;
            targetType: string | null;
            targetId: string | null;
            ip: string | null;
            details: {
                [key: string]: string | number | boolean | null;
            };
        };
        JobRunInput: {
            job: string;
            /** @enum {string} */
            scope: "cluster" | "node";
            node: string;
            /** @enum {string} */
            outcome: "running" | "succeeded" | "failed";
            error: string | null;
            startedAt: string;
            endedAt: string | null;
        };
        AdminSandboxInput: {
            id: string;
            name: string | null;
            /** @description the digest of the image it was made from; null for a host view */
            image: string | null;
            /** @enum {string} */
            state: "creating" | "running" | "hibernated" | "stopped" | "destroying" | "destroyed" | "failed";
            failureReason: string | null;
            driver: string;
            cpu: number;
            memoryMb: number;
            diskMb: number;
            pidsMax: number;
            /** @enum {string} */
            network: "none" | "egress" | "allowlist";
            egressPolicy: {
                allow: string[];
                deny: string[];
                presets: string[];
            } | null;
            envKeys: string[];
            metadata: {
                [key: string]: string;
            };
            timeoutMs: number;
            idleTimeoutMs: number;
            createdAt: string;
            expiresAt: string;
            lastActivityAt: string;
            stateChangedAt: string;
            /** @description the server (node) that hosts it among replicas; null for sandboxes made before nodes */
            node: string | null;
            ownerId: string;
            ownerName: string;
        };
        AdminStatsInput: {
            users: number;
            sandboxesByState: {
                [key: string]: number;
            };
            /** @description the last 24 hours, oldest first, every hour present (the last one is the current hour) */
            runsPerHour: {
                hour: string;
                count: number;
            }[];
            /** @description gateway traffic of every user over the same 24 hours, by provider name */
            usageByProvider: {
                provider: string;
                requests: number;
                inputTokens: number;
                outputTokens: number;
            }[];
        };
        ApiKeyInput: {
            id: string;
            name: string;
            /** @description the key's first characters, to tell keys apart; not a secret */
            prefix: string;
            createdAt: string;
            /** @description null: never expires */
            expiresAt: string | null;
            /** @description updated at most once a minute */
            lastUsedAt: string | null;
        };
        CredentialInput: {
            provider: string;
            kind: string;
            createdAt: string;
            updatedAt: string;
            lastUsedAt: string | null;
            lastValidatedAt: string | null;
            valid: boolean | null;
        };
        ImageInput: {
            id: string;
            name: string;
            /** @description a system image (polydev/base), visible to every user */
            system: boolean;
            /** @description sha256 of the layer list and config; null until ready */
            digest: string | null;
            /** @enum {string} */
            state: "building" | "ready" | "failed";
            /** @enum {string} */
            source: "base" | "import" | "pull" | "dockerfile" | "snapshot";
            layers: string[];
            config: {
                env: {
                    [key: string]: string;
                };
                workdir?: string;
                user?: string;
                cmd?: string[];
                entrypoint?: string[];
            };
            sizeBytes: number;
            error: string | null;
            createdAt: string;
            updatedAt: string;
        };
        ImageDetailInput: {
            id: string;
            name: string;
            /** @description a system image (polydev/base), visible to every user */
            system: boolean;
            /** @description sha256 of the layer list and config; null until ready */
            digest: string | null;
            /** @enum {string} */
            state: "building" | "ready" | "failed";
            /** @enum {string} */
            source: "base" | "import" | "pull" | "dockerfile" | "snapshot";
            layers: string[];
            config: {
                env: {
                    [key: string]: string;
                };
                workdir?: string;
                user?: string;
                cmd?: string[];
                entrypoint?: string[];
            };
            sizeBytes: number;
            error: string | null;
            createdAt: string;
            updatedAt: string;
            /** @description the build or pull log (its newest 256 KiB) */
            log: string;
        };
        LoginInput: {
            id: string;
            /** @enum {string} */
            provider: "claude" | "codex" | "gemini";
            sandboxId: string;
            /** @enum {string} */
            state: "starting" | "awaiting_user" | "completing" | "completed" | "failed" | "timed_out" | "cancelled";
            /** @description open this in your own browser */
            url: string | null;
            /** @description the code to enter on the provider's device page, if any */
            userCode: string | null;
            /**
             * @description what to send back: { code } or { callbackUrl }
             * @enum {string}
             */
            finish: "code" | "callback";
            reason: string | null;
            createdAt: string;
            updatedAt: string;
        };
        McpServerInput: {
            name: string;
            /** @enum {string} */
            transport: "stdio" | "http" | "sse";
            command: string | null;
            args: string[];
            url: string | null;
            /** @description the names of its environment variables (values are never answered) */
            env: string[];
            /** @description the names of its headers (values are never answered) */
            headers: string[];
            createdAt: string;
        };
        PlanLimitsInput: {
            /** @description sandboxes creating, running or hibernated at once */
            runningSandboxes?: number;
            /** @description total CPUs of those sandboxes */
            cpu?: number;
            /** @description total memory (MiB) of those sandboxes */
            memoryMb?: number;
            /** @description total disk (MiB) of every sandbox not destroyed (stopped ones included) */
            diskMb?: number;
            /** @description runs started in the last hour */
            runsPerHour?: number;
            /** @description provider tokens (input + output) since the start of the UTC month */
            tokensPerMonth?: number;
            /** @description USD since the start of the UTC month, by the operator's model prices (POLYDEV_MODEL_PRICES) */
            costPerMonthUsd?: number;
            /** @description API requests per key per minute */
            requestsPerMinute?: number;
        };
        PlanInput: {
            name: string;
            description: string;
            limits: components["schemas"]["PlanLimitsInput"];
            /** @description users put on this plan (the default plan also covers users on none) */
            users: number;
            createdAt: string;
            updatedAt: string;
        };
        QuotaInput: {
            /** @description the plan that applies (null: none, unlimited) */
            plan: string | null;
            limits: components["schemas"]["PlanLimitsInput"];
            used: {
                runningSandboxes: number;
                cpu: number;
                memoryMb: number;
                diskMb: number;
                runsPerHour: number;
                tokensPerMonth: number;
                costPerMonthUsd: number;
            };
        };
        ListeningPortInput: {
            port: number;
            address: string;
            process: {
                pid: number;
                name: string;
            } | null;
        };
        PreviewLinkInput: {
            url: string;
            expiresAt: string;
            share: boolean;
        };
        ProjectInput: {
            name: string;
            /** @description the folder in the sandbox (relative to the home): a run's project */
            path: string;
            url: string | null;
            head: string | null;
            branch: string | null;
            /** @description the command run in each agent's copy when a run ends */
            check: string | null;
        };
        RunKeepInput: {
            runId: string;
            /** @description the branch holding the run's change, in the original project */
            branch: string;
            commit: string;
            /** @description the project's current branch was fast-forwarded or merged to it */
            merged: boolean;
            pushed: boolean;
            pullRequestUrl: string | null;
            keptAt: string;
        };
        GitCredentialInput: {
            host: string;
            username: string;
            forge: string | null;
            apiUrl: string | null;
            createdAt: string;
            updatedAt: string;
            lastUsedAt: string | null;
        };
        RunInput: {
            id: string;
            sandboxId: string;
            groupId: string | null;
            /** @enum {string} */
            agent: "claude" | "codex" | "gemini" | "builtin";
            prompt: string;
            model: string | null;
            cwd: string;
            /** @enum {string} */
            state: "queued" | "running" | "succeeded" | "failed" | "cancelled" | "timed_out";
            exitReason: string | null;
            finalText: string | null;
            usage: {
                inputTokens: number;
                outputTokens: number;
            };
            createdAt: string;
            startedAt: string | null;
            endedAt: string | null;
        };
        RunChangesInput: {
            runId: string;
            project: string;
            baseCommit: string | null;
            files: {
                path: string;
                status: string;
            }[];
            filesTruncated: boolean;
            diff: string;
            /** @description the diff was cut at 1 MiB */
            diffTruncated: boolean;
            check: {
                command: string;
                exitCode: number | null;
                output: string;
                outputTruncated: boolean;
            } | null;
            /** @description why the changes could not be read, else null */
            error: string | null;
            recordedAt: string;
            /** @description how the change was kept (POST /v1/runs/:id/keep), else null */
            keep: components["schemas"]["RunKeepInput"] | null;
            usage: {
                inputTokens: number;
                outputTokens: number;
            };
            durationMs: number | null;
            /** @description by the operator's price table (POLYDEV_MODEL_PRICES); null when the run's model has no price */
            costUsd: number | null;
        };
        RunTurnInput: {
            run: components["schemas"]["RunInput"];
            /** @description the turn this message opened: 2 for a run's first follow-up */
            turn: number;
            /** @description the turn's events follow this sequence number: stream them with Last-Event-ID set to it */
            afterSeq: number;
        };
        WebhookInput: {
            id: string;
            url: string;
            events: string[];
            createdAt: string;
        };
        WebhookDeliveryInput: {
            id: string;
            event: string;
            /** @enum {string} */
            state: "pending" | "delivered" | "failed";
            attempts: number;
            lastStatus: number | null;
            lastError: string | null;
            nextAttemptAt: string | null;
            createdAt: string;
            updatedAt: string;
        };
        CreateSandboxInput: {
            /** @description your name for it, unique among your sandboxes that are not destroyed; usable instead of its id */
            name?: string;
            /** @description the image to start from, e.g. "polydev/base" (the default where the server has images) or one you built, pulled, imported or snapshotted */
            image?: string;
            /** @description the isolation backend, e.g. "namespace", "gvisor" or "microvm": one of the drivers GET /healthz lists; default the first there */
            driver?: string;
            /** @description CPU cores (0.05 … 8); default 1 */
            cpu?: number;
            /** @description memory limit in MiB; default 512 */
            memoryMb?: number;
            /** @description disk size in MiB: the image's files and the sandbox's changes (the home without an image); default 1024 */
            diskMb?: number;
            /** @description process limit; default 256 */
            pidsMax?: number;
            /** @description "none" (default): loopback only; "egress": outbound internet; {"mode": "allowlist", "allow": [...], "deny": [...], "presets": [...]}: only what the rules allow, decided outside the sandbox */
            network?: ("none" | "egress" | "allowlist") | ({
                /** @constant */
                mode: "none";
            } | {
                /** @constant */
                mode: "egress";
            } | {
                /** @description allow rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                allow: string[];
                /** @description deny rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                deny?: string[];
                /** @description names of admin-defined presets whose rules are added */
                presets?: string[];
                /** @constant */
                mode: "allowlist";
            });
            /** @description hard TTL; default 24 h */
            timeoutMs?: number;
            /** @description no-activity TTL; default 30 min */
            idleTimeoutMs?: number;
            env?: {
                [key: string]: string;
            };
            metadata?: {
                [key: string]: string;
            };
        };
        UpdateSandboxInput: {
            /** @description the new disk size in MiB (up to 16384); disks only grow */
            diskMb: number;
        };
        CreatedWebhookInput: {
            id: string;
            url: string;
            events: string[];
            createdAt: string;
            /** @description the signing secret; shown only in this answer */
            secret: string;
        };
        SandboxNetwork: {
            allow: string[];
            deny: string[];
            presets: string[];
            /** @enum {string} */
            mode: "none" | "egress" | "allowlist";
            effective: {
                allow: string[];
                deny: string[];
            };
        };
        NetworkPreset: {
            name: string;
            description: string;
            allow: string[];
            deny: string[];
        };
        EgressAuditEvent: {
            id: number;
            at: string;
            /** @enum {string} */
            kind: "tcp" | "dns";
            host: string | null;
            address: string;
            port: number;
            /** @enum {string} */
            decision: "allowed" | "denied";
            reason: string;
            bytesOut: number;
            bytesIn: number;
            durationMs: number;
        };
        Error: {
            error: {
                code: string;
                message: string;
                details?: {
                    [key: string]: unknown;
                };
            };
        };
        Sandbox: {
            id: string;
            name: string | null;
            /** @description the digest of the image it was made from; null for a host view */
            image: string | null;
            /** @enum {string} */
            state: "creating" | "running" | "hibernated" | "stopped" | "destroying" | "destroyed" | "failed";
            failureReason: string | null;
            driver: string;
            cpu: number;
            memoryMb: number;
            diskMb: number;
            pidsMax: number;
            /** @enum {string} */
            network: "none" | "egress" | "allowlist";
            egressPolicy: {
                allow: string[];
                deny: string[];
                presets: string[];
            } | null;
            envKeys: string[];
            metadata: {
                [key: string]: string;
            };
            timeoutMs: number;
            idleTimeoutMs: number;
            createdAt: string;
            expiresAt: string;
            lastActivityAt: string;
            stateChangedAt: string;
            /** @description the server (node) that hosts it among replicas; null for sandboxes made before nodes */
            node: string | null;
        };
        ForkSandbox: {
            /**
             * @description how many sandboxes to make (1 … 16); default 1
             * @default 1
             */
            count: number;
            /** @description one name per new sandbox, in order; default: unnamed */
            names?: string[];
        };
        ExecRequest: {
            /** @description a shell line ("ls -la | wc -l") or an argv array (["ls", "-la"]) */
            cmd: string | string[];
            /** @description relative to the home, or absolute inside the sandbox */
            cwd?: string;
            env?: {
                [key: string]: string;
            };
            /** @description who runs it: "user" (the default in polydev/base), "root", another user of the image, or a uid */
            user?: string;
            /** @description text written to the process's stdin, then closed */
            stdin?: string;
            /** @description kill the command after this long */
            timeoutMs?: number;
        };
        ExecResult: {
            exitCode: number | null;
            signal: string | null;
            timedOut: boolean;
            durationMs: number;
            stdout: string;
            stderr: string;
            truncated: boolean;
        };
        BackgroundProcess: {
            id: string;
            argv: string[];
            startedAt: string;
            /** @enum {string} */
            state: "running" | "exited";
            exitCode: number | null;
            signal: string | null;
            outputBytes: number;
        };
        FileEntry: {
            name: string;
            path: string;
            /** @enum {string} */
            type: "file" | "directory" | "symlink" | "other";
            sizeBytes: number;
            modifiedAt: string;
            mode: number;
        };
        Session: {
            user: {
                id: string;
                name: string;
                /** @enum {string} */
                role: "admin" | "user";
            };
            /** @description send it as the x-csrf-token header on every POST, PUT, PATCH and DELETE */
            csrfToken: string;
        };
        AuditEvent: {
            id: number;
            at: string;
            action: string;
            /** @enum {string} */
            outcome: "success" | "failure";
            actorId: string | null;
            actorName: string | null;
            targetType: string | null;
            targetId: string | null;
            ip: string | null;
            details: {
                [key: string]: string | number | boolean | null;
            };
        };
        JobRun: {
            job: string;
            /** @enum {string} */
            scope: "cluster" | "node";
            node: string;
            /** @enum {string} */
            outcome: "running" | "succeeded" | "failed";
            error: string | null;
            startedAt: string;
            endedAt: string | null;
        };
        AdminSandbox: {
            id: string;
            name: string | null;
            /** @description the digest of the image it was made from; null for a host view */
            image: string | null;
            /** @enum {string} */
            state: "creating" | "running" | "hibernated" | "stopped" | "destroying" | "destroyed" | "failed";
            failureReason: string | null;
            driver: string;
            cpu: number;
            memoryMb: number;
            diskMb: number;
            pidsMax: number;
            /** @enum {string} */
            network: "none" | "egress" | "allowlist";
            egressPolicy: {
                allow: string[];
                deny: string[];
                presets: string[];
            } | null;
            envKeys: string[];
            metadata: {
                [key: string]: string;
            };
            timeoutMs: number;
            idleTimeoutMs: number;
            createdAt: string;
            expiresAt: string;
            lastActivityAt: string;
            stateChangedAt: string;
            /** @description the server (node) that hosts it among replicas; null for sandboxes made before nodes */
            node: string | null;
            ownerId: string;
            ownerName: string;
        };
        AdminStats: {
            users: number;
            sandboxesByState: {
                [key: string]: number;
            };
            /** @description the last 24 hours, oldest first, every hour present (the last one is the current hour) */
            runsPerHour: {
                hour: string;
                count: number;
            }[];
            /** @description gateway traffic of every user over the same 24 hours, by provider name */
            usageByProvider: {
                provider: string;
                requests: number;
                inputTokens: number;
                outputTokens: number;
            }[];
        };
        ApiKey: {
            id: string;
            name: string;
            /** @description the key's first characters, to tell keys apart; not a secret */
            prefix: string;
            createdAt: string;
            /** @description null: never expires */
            expiresAt: string | null;
            /** @description updated at most once a minute */
            lastUsedAt: string | null;
        };
        Credential: {
            provider: string;
            kind: string;
            createdAt: string;
            updatedAt: string;
            lastUsedAt: string | null;
            lastValidatedAt: string | null;
            valid: boolean | null;
        };
        Image: {
            id: string;
            name: string;
            /** @description a system image (polydev/base), visible to every user */
            system: boolean;
            /** @description sha256 of the layer list and config; null until ready */
            digest: string | null;
            /** @enum {string} */
            state: "building" | "ready" | "failed";
            /** @enum {string} */
            source: "base" | "import" | "pull" | "dockerfile" | "snapshot";
            layers: string[];
            config: {
                env: {
                    [key: string]: string;
                };
                workdir?: string;
                user?: string;
                cmd?: string[];
                entrypoint?: string[];
            };
            sizeBytes: number;
            error: string | null;
            createdAt: string;
            updatedAt: string;
        };
        ImageDetail: {
            id: string;
            name: string;
            /** @description a system image (polydev/base), visible to every user */
            system: boolean;
            /** @description sha256 of the layer list and config; null until ready */
            digest: string | null;
            /** @enum {string} */
            state: "building" | "ready" | "failed";
            /** @enum {string} */
            source: "base" | "import" | "pull" | "dockerfile" | "snapshot";
            layers: string[];
            config: {
                env: {
                    [key: string]: string;
                };
                workdir?: string;
                user?: string;
                cmd?: string[];
                entrypoint?: string[];
            };
            sizeBytes: number;
            error: string | null;
            createdAt: string;
            updatedAt: string;
            /** @description the build or pull log (its newest 256 KiB) */
            log: string;
        };
        Login: {
            id: string;
            /** @enum {string} */
            provider: "claude" | "codex" | "gemini";
            sandboxId: string;
            /** @enum {string} */
            state: "starting" | "awaiting_user" | "completing" | "completed" | "failed" | "timed_out" | "cancelled";
            /** @description open this in your own browser */
            url: string | null;
            /** @description the code to enter on the provider's device page, if any */
            userCode: string | null;
            /**
             * @description what to send back: { code } or { callbackUrl }
             * @enum {string}
             */
            finish: "code" | "callback";
            reason: string | null;
            createdAt: string;
            updatedAt: string;
        };
        McpServer: {
            name: string;
            /** @enum {string} */
            transport: "stdio" | "http" | "sse";
            command: string | null;
            args: string[];
            url: string | null;
            /** @description the names of its environment variables (values are never answered) */
            env: string[];
            /** @description the names of its headers (values are never answered) */
            headers: string[];
            createdAt: string;
        };
        PlanLimits: {
            /** @description sandboxes creating, running or hibernated at once */
            runningSandboxes?: number;
            /** @description total CPUs of those sandboxes */
            cpu?: number;
            /** @description total memory (MiB) of those sandboxes */
            memoryMb?: number;
            /** @description total disk (MiB) of every sandbox not destroyed (stopped ones included) */
            diskMb?: number;
            /** @description runs started in the last hour */
            runsPerHour?: number;
            /** @description provider tokens (input + output) since the start of the UTC month */
            tokensPerMonth?: number;
            /** @description USD since the start of the UTC month, by the operator's model prices (POLYDEV_MODEL_PRICES) */
            costPerMonthUsd?: number;
            /** @description API requests per key per minute */
            requestsPerMinute?: number;
        };
        Plan: {
            name: string;
            description: string;
            limits: components["schemas"]["PlanLimits"];
            /** @description users put on this plan (the default plan also covers users on none) */
            users: number;
            createdAt: string;
            updatedAt: string;
        };
        Quota: {
            /** @description the plan that applies (null: none, unlimited) */
            plan: string | null;
            limits: components["schemas"]["PlanLimits"];
            used: {
                runningSandboxes: number;
                cpu: number;
                memoryMb: number;
                diskMb: number;
                runsPerHour: number;
                tokensPerMonth: number;
                costPerMonthUsd: number;
            };
        };
        ListeningPort: {
            port: number;
            address: string;
            process: {
                pid: number;
                name: string;
            } | null;
        };
        PreviewLink: {
            url: string;
            expiresAt: string;
            share: boolean;
        };
        Project: {
            name: string;
            /** @description the folder in the sandbox (relative to the home): a run's project */
            path: string;
            url: string | null;
            head: string | null;
            branch: string | null;
            /** @description the command run in each agent's copy when a run ends */
            check: string | null;
        };
        RunKeep: {
            runId: string;
            /** @description the branch holding the run's change, in the original project */
            branch: string;
            commit: string;
            /** @description the project's current branch was fast-forwarded or merged to it */
            merged: boolean;
            pushed: boolean;
            pullRequestUrl: string | null;
            keptAt: string;
        };
        GitCredential: {
            host: string;
            username: string;
            forge: string | null;
            apiUrl: string | null;
            createdAt: string;
            updatedAt: string;
            lastUsedAt: string | null;
        };
        Run: {
            id: string;
            sandboxId: string;
            groupId: string | null;
            /** @enum {string} */
            agent: "claude" | "codex" | "gemini" | "builtin";
            prompt: string;
            model: string | null;
            cwd: string;
            /** @enum {string} */
            state: "queued" | "running" | "succeeded" | "failed" | "cancelled" | "timed_out";
            exitReason: string | null;
            finalText: string | null;
            usage: {
                inputTokens: number;
                outputTokens: number;
            };
            createdAt: string;
            startedAt: string | null;
            endedAt: string | null;
        };
        RunChanges: {
            runId: string;
            project: string;
            baseCommit: string | null;
            files: {
                path: string;
                status: string;
            }[];
            filesTruncated: boolean;
            diff: string;
            /** @description the diff was cut at 1 MiB */
            diffTruncated: boolean;
            check: {
                command: string;
                exitCode: number | null;
                output: string;
                outputTruncated: boolean;
            } | null;
            /** @description why the changes could not be read, else null */
            error: string | null;
            recordedAt: string;
            /** @description how the change was kept (POST /v1/runs/:id/keep), else null */
            keep: components["schemas"]["RunKeep"] | null;
            usage: {
                inputTokens: number;
                outputTokens: number;
            };
            durationMs: number | null;
            /** @description by the operator's price table (POLYDEV_MODEL_PRICES); null when the run's model has no price */
            costUsd: number | null;
        };
        RunTurn: {
            run: components["schemas"]["Run"];
            /** @description the turn this message opened: 2 for a run's first follow-up */
            turn: number;
            /** @description the turn's events follow this sequence number: stream them with Last-Event-ID set to it */
            afterSeq: number;
        };
        Webhook: {
            id: string;
            url: string;
            events: string[];
            createdAt: string;
        };
        WebhookDelivery: {
            id: string;
            event: string;
            /** @enum {string} */
            state: "pending" | "delivered" | "failed";
            attempts: number;
            lastStatus: number | null;
            lastError: string | null;
            nextAttemptAt: string | null;
            createdAt: string;
            updatedAt: string;
        };
        CreateSandbox: {
            /** @description your name for it, unique among your sandboxes that are not destroyed; usable instead of its id */
            name?: string;
            /** @description the image to start from, e.g. "polydev/base" (the default where the server has images) or one you built, pulled, imported or snapshotted */
            image?: string;
            /** @description the isolation backend, e.g. "namespace", "gvisor" or "microvm": one of the drivers GET /healthz lists; default the first there */
            driver?: string;
            /** @description CPU cores (0.05 … 8); default 1 */
            cpu?: number;
            /** @description memory limit in MiB; default 512 */
            memoryMb?: number;
            /** @description disk size in MiB: the image's files and the sandbox's changes (the home without an image); default 1024 */
            diskMb?: number;
            /** @description process limit; default 256 */
            pidsMax?: number;
            /** @description "none" (default): loopback only; "egress": outbound internet; {"mode": "allowlist", "allow": [...], "deny": [...], "presets": [...]}: only what the rules allow, decided outside the sandbox */
            network?: ("none" | "egress" | "allowlist") | ({
                /** @constant */
                mode: "none";
            } | {
                /** @constant */
                mode: "egress";
            } | {
                /** @description allow rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                allow: string[];
                /** @description deny rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16) */
                deny?: string[];
                /** @description names of admin-defined presets whose rules are added */
                presets?: string[];
                /** @constant */
                mode: "allowlist";
            });
            /** @description hard TTL; default 24 h */
            timeoutMs?: number;
            /** @description no-activity TTL; default 30 min */
            idleTimeoutMs?: number;
            env?: {
                [key: string]: string;
            };
            metadata?: {
                [key: string]: string;
            };
        };
        UpdateSandbox: {
            /** @description the new disk size in MiB (up to 16384); disks only grow */
            diskMb: number;
        };
        CreatedWebhook: {
            id: string;
            url: string;
            events: string[];
            createdAt: string;
            /** @description the signing secret; shown only in this answer */
            secret: string;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export type operations = Record<string, never>;
