import "./styles.css";
import { QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app";
import { isTransient, isUnauthorized } from "./queries/errors";
import { sessionKey } from "./queries/session";

const client: QueryClient = new QueryClient({
  // A 401 anywhere means the session ended (expired, signed out in another tab): show sign-in.
  queryCache: new QueryCache({
    onError: (error, query) => {
      if (isUnauthorized(error) && query.queryKey[0] !== sessionKey[0]) client.setQueryData(sessionKey, null);
    },
  }),
  defaultOptions: {
    queries: { retry: (count, error) => isTransient(error) && count < 2, refetchOnWindowFocus: true },
  },
});

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root element");
createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={client}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
