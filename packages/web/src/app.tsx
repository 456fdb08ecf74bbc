import { useQuery } from "@tanstack/react-query";
import type { Session } from "./api/types";
import { ErrorNotice } from "./components/error-notice";
import { NotifyToggle } from "./components/notify-toggle";
import { AdminAuditPage } from "./pages/admin-audit-page";
import { AdminPage } from "./pages/admin-page";
import { AdminSandboxPage } from "./pages/admin-sandbox-page";
import { CredentialsPage } from "./pages/credentials-page";
import { GroupPage } from "./pages/group-page";
import { ImagesPage } from "./pages/images-page";
import { KeysPage } from "./pages/keys-page";
import { RunViewPage } from "./pages/run-view-page";
import { RunsPage } from "./pages/runs-page";
import { SandboxPage } from "./pages/sandbox-page";
import { SandboxesPage } from "./pages/sandboxes-page";
import { SignInPage } from "./pages/sign-in-page";
import { sessionQuery, useSignOut } from "./queries/session";
import { Link, matchRoute, usePath } from "./router";

export function App() {
  const session = useQuery(sessionQuery());
  if (session.isPending) {
    return (
      <main className="center" aria-busy="true">
        <p className="muted">
          <span className="spinner" aria-hidden="true" /> Loading Polydev…
        </p>
      </main>
    );
  }
  if (session.error) {
    return (
      <main className="center">
        <ErrorNotice
          error={session.error}
          title="Could not reach Polydev"
          onRetry={() => void session.refetch()}
        />
      </main>
    );
  }
  if (!session.data) return <SignInPage />;
  return <Shell session={session.data} />;
}

const NAV = [
  { href: "/", label: "Sandboxes", match: ["sandboxes", "sandbox"] },
  { href: "/runs", label: "Runs", match: ["runs", "run-view", "group"] },
  { href: "/images", label: "Images", match: ["images"] },
  { href: "/credentials", label: "Credentials", match: ["credentials"] },
  { href: "/keys", label: "API keys", match: ["keys"] },
] as const;

function Shell({ session }: { session: Session }) {
  const path = usePath();
  const route = matchRoute(path);
  const signOut = useSignOut();
  const nav =
    session.user.role === "admin"
      ? [
          ...NAV,
          { href: "/admin", label: "Admin", match: ["admin", "admin-sandbox"] },
          { href: "/admin/audit", label: "Audit", match: ["admin-audit"] },
        ]
      : NAV;
  return (
    <div className="shell">
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <Link href="/" className="brand">
          <span className="brand-mark" aria-hidden="true" />
          Polydev
        </Link>
        <nav aria-label="Main" className="nav">
          {nav.map((item) => {
            const current = (item.match as readonly string[]).includes(route.page);
            return (
              <Link
                key={item.href}
                href={item.href}
                className="nav-link"
                aria-current={current ? "page" : undefined}
              >
                {item.label}
              </Link>
            );
          })}
        </nav>
        <div className="whoami">
          <NotifyToggle />
          {/* A page of the server, not of the dashboard: a full load. */}
          <a href="/api-reference" className="nav-link small">
            API reference
          </a>
          <span className="muted" title={`signed in as ${session.user.name} (${session.user.role})`}>
            {session.user.name}
          </span>
          <button
            type="button"
            className="button button-small"
            onClick={() => signOut.mutate()}
            disabled={signOut.isPending}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" className="content" tabIndex={-1}>
        {signOut.error ? <ErrorNotice error={signOut.error} title="Could not sign out" /> : null}
        <Page route={route} session={session} />
      </main>
    </div>
  );
}

function Page({ route, session }: { route: ReturnType<typeof matchRoute>; session: Session }) {
  switch (route.page) {
    case "sandboxes":
      return <SandboxesPage />;
    case "sandbox":
      return <SandboxPage id={route.id} />;
    case "runs":
      return <RunsPage />;
    case "run-view":
      return <RunViewPage runIds={route.runIds} />;
    case "group":
      return <GroupPage groupId={route.groupId} />;
    case "images":
      return <ImagesPage />;
    case "credentials":
      return <CredentialsPage />;
    case "keys":
      return <KeysPage />;
    case "admin-audit":
      return session.user.role === "admin" ? (
        <AdminAuditPage />
      ) : (
        <section className="card">
          <h1>Admins only</h1>
          <p>The audit log is for administrators.</p>
        </section>
      );
    case "admin":
      return session.user.role === "admin" ? (
        <AdminPage />
      ) : (
        <section className="card">
          <h1>Admins only</h1>
          <p>This page is for administrators. Ask an admin if you need users or system figures.</p>
        </section>
      );
    case "admin-sandbox":
      return session.user.role === "admin" ? (
        <AdminSandboxPage id={route.id} />
      ) : (
        <section className="card">
          <h1>Admins only</h1>
          <p>This page is for administrators.</p>
        </section>
      );
    case "not-found":
      return (
        <section className="card">
          <h1>Nothing here</h1>
          <p>
            This address does not match a page. <Link href="/">Go to your sandboxes</Link>.
          </p>
        </section>
      );
  }
}
