/**
 * Browser notifications when a run, or a whole group, ends. Permission is asked only when the
 * user presses the button (browsers ignore or penalise asking on load); the choice is remembered
 * in this browser. While on, the dashboard follows `GET /v1/events` (one stream per tab; the
 * server caps them per user) and announces each `run.finished` as describeFinished words it.
 */
import { useCallback, useEffect, useState } from "react";
import { apiUrl } from "../api/http";
import { polydev } from "../api/polydev";
import type { Run } from "../api/types";
import { describeFinished } from "../components/finished-notification";
import { navigate } from "../router";

export type NotifyState = "unsupported" | "denied" | "off" | "on";

const PREFERENCE_KEY = "polydev.notify-when-runs-end";

function readState(): NotifyState {
  if (typeof window.Notification !== "function") return "unsupported";
  if (window.Notification.permission === "denied") return "denied";
  const wanted = window.localStorage.getItem(PREFERENCE_KEY) === "on";
  return wanted && window.Notification.permission === "granted" ? "on" : "off";
}

/** The runs of the finished run's group as they are now, or undefined for a lone run. */
async function groupOf(run: Run): Promise<Run[] | undefined> {
  if (run.groupId === null) return undefined;
  return (await polydev.runs.list({ groupId: run.groupId, limit: 50 })).items;
}

function show(title: string, body: string, tag: string, href: string): void {
  const notification = new window.Notification(title, { body, tag });
  notification.onclick = () => {
    window.focus();
    navigate(href);
    notification.close();
  };
}

export function useRunNotifications(): {
  state: NotifyState;
  enable: () => Promise<void>;
  disable: () => void;
} {
  const [state, setState] = useState<NotifyState>(readState);

  const enable = useCallback(async () => {
    if (typeof window.Notification !== "function") return;
    const permission =
      window.Notification.permission === "default"
        ? await window.Notification.requestPermission()
        : window.Notification.permission;
    if (permission === "granted") window.localStorage.setItem(PREFERENCE_KEY, "on");
    setState(readState());
  }, []);

  const disable = useCallback(() => {
    window.localStorage.removeItem(PREFERENCE_KEY);
    setState(readState());
  }, []);

  useEffect(() => {
    if (state !== "on") return;
    // A group is announced once, whichever of its runs' events arrives last (or twice at once).
    const announced = new Set<string>();
    const source = new EventSource(apiUrl("/v1/events"));
    const onFinished = async (message: MessageEvent<string>): Promise<void> => {
      const event = JSON.parse(message.data) as { data?: { runId?: unknown } };
      const runId = event.data?.runId;
      if (typeof runId !== "string") return;
      const run = await polydev.runs.get(runId);
      const notice = describeFinished(run, await groupOf(run));
      if (!notice || announced.has(notice.tag)) return;
      announced.add(notice.tag);
      show(notice.title, notice.body, notice.tag, notice.href);
    };
    source.addEventListener("run.finished", (message) => {
      // A notice that could not be made (the run was deleted, the network dropped) is skipped.
      onFinished(message).catch(() => undefined);
    });
    return () => source.close();
  }, [state]);

  return { state, enable, disable };
}
