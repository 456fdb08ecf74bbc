/**
 * Stand-in login CLIs for tests: they behave like the real ones (print a sign-in URL, wait for a
 * code or a localhost callback, write a credential file) without reaching any provider.
 */
import type { LoginFlow, LoginProvider } from "../services/login-flows.js";
import { DEFAULT_LOGIN_FLOWS } from "../services/login-flows.js";

export const GOOD_CODE = "good-code";
/** Makes the stand-in write a credential file far larger than any real one. */
export const HUGE_FILE_CODE = "huge-file-code";

const CLAUDE_LIKE = String.raw`
printf 'Browser did not open? Use the url below to sign in:\n\nhttps://claude.ai/oauth/authorize?code=true&client_id=stand-in&state=s1\n\nPaste code here if prompted > '
IFS= read -r code
if [ "$code" = "${GOOD_CODE}" ]; then
  umask 077; mkdir -p "$HOME/.claude"
  printf '{"claudeAiOauth":{"accessToken":"oauth-access-%s","refreshToken":"oauth-refresh","expiresAt":4102444800000,"scopes":["user:inference"]}}' "$code" > "$HOME/.claude/.credentials.json"
  echo "Login successful."; exit 0
fi
if [ "$code" = "${HUGE_FILE_CODE}" ]; then
  umask 077; mkdir -p "$HOME/.claude"
  head -c 1048576 /dev/zero | tr '\0' 'x' > "$HOME/.claude/.credentials.json"
  echo "Login successful."; exit 0
fi
# Like the real CLI: the refusal, then a wait for another try (it does not exit).
printf 'Login failed: Invalid authorization code\n\nPaste code here if prompted > '
IFS= read -r again
exit 1
`;

const CODEX_LIKE = String.raw`
import http.server, json, os, sys, urllib.parse
print("Starting local login server on http://localhost:1455.")
print("If your browser did not open, navigate to this URL to authenticate:\n\nhttps://auth.openai.com/oauth/authorize?response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback", flush=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        ok = query.get("code") == ["${GOOD_CODE}"]
        if ok:
            os.makedirs(os.path.expanduser("~/.codex"), exist_ok=True)
            path = os.path.expanduser("~/.codex/auth.json")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                json.dump({"auth_mode": "chatgpt", "tokens": {"access_token": "codex-access", "refresh_token": "r", "id_token": "i", "account_id": "a"}}, f)
        self.send_response(200 if ok else 400)
        self.end_headers()
        self.server.ok = ok
server = http.server.HTTPServer(("127.0.0.1", 1455), Handler)
server.ok = False
server.handle_request()
print("Successfully logged in" if server.ok else "Login failed", flush=True)
sys.exit(0 if server.ok else 1)
`;

export const STAND_IN_LOGIN_FLOWS: Record<LoginProvider, LoginFlow> = {
  claude: { ...DEFAULT_LOGIN_FLOWS.claude, argv: ["/bin/sh", "-c", CLAUDE_LIKE] },
  codex: { ...DEFAULT_LOGIN_FLOWS.codex, argv: ["python3", "-c", CODEX_LIKE] },
  gemini: { ...DEFAULT_LOGIN_FLOWS.gemini, argv: ["/bin/sh", "-c", "echo 'no sign-in URL here'; sleep 30"] },
};
