/** Label sets stay bounded whatever a sandbox or a client sends. */
import { describe, expect, it } from "vitest";
import { MAX_MODELS_PER_PROVIDER, Metrics } from "./metrics.js";

describe("Metrics labels", () => {
  it("caps the model names a provider's requests may add, and refuses odd ones", async () => {
    const metrics = new Metrics();
    for (let i = 0; i < MAX_MODELS_PER_PROVIDER + 50; i++)
      metrics.gatewayUsage({
        provider: "anthropic",
        model: `model-${i}`,
        status: 200,
        inputTokens: 1,
        outputTokens: 1,
      });
    metrics.gatewayUsage({
      provider: "openai",
      model: 'evil"} 1\nfake_metric{',
      status: 500,
      inputTokens: 0,
      outputTokens: 0,
    });
    const text = await metrics.text();
    const models = new Set(
      [...text.matchAll(/^polydev_gateway_requests_total\{provider="anthropic",model="([^"]*)"/gm)].map(
        (m) => m[1],
      ),
    );
    expect(models.size).toBe(MAX_MODELS_PER_PROVIDER + 1);
    expect(models.has("other")).toBe(true);
    expect(text).toContain(
      'polydev_gateway_requests_total{provider="anthropic",model="model-0",status="2xx"} 1',
    );
    expect(text).toContain('polydev_gateway_requests_total{provider="openai",model="other",status="5xx"} 1');
    expect(text).not.toContain("fake_metric");
  });

  it("labels an unknown HTTP method as OTHER", async () => {
    const metrics = new Metrics();
    metrics.httpRequest("PROPFIND", "unmatched", 404, 1);
    metrics.httpRequest("GET", "/v1/sandboxes/:id", 200, 2);
    const text = await metrics.text();
    expect(text).toContain('method="OTHER",route="unmatched",status_code="404"');
    expect(text).toContain('method="GET",route="/v1/sandboxes/:id",status_code="200"');
  });
});
