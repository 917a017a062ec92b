import { execFileSync } from 'node:child_process';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  name: string;
  type: string;
  unit: string;
  samples: Sample[];
}

/**
 * Parses OpenMetrics text with the reference implementation's strict parser (Debian's
 * python3-prometheus-client): it rejects a missing `# EOF`, counters without `_total`, duplicate families.
 */
export function parseOpenMetrics(text: string): Family[] {
  const script = `
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "unit": f.unit,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: text, encoding: 'utf8' })) as Family[];
}
