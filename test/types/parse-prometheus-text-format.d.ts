// The package ships no types: the shape of what it returns (values stay strings, as in the text).
declare module "parse-prometheus-text-format" {
  export interface PrometheusSample {
    value: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
  }
  export interface PrometheusFamily {
    name: string;
    help: string;
    type: "COUNTER" | "GAUGE" | "SUMMARY" | "HISTOGRAM" | "UNTYPED";
    metrics: PrometheusSample[];
  }
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
