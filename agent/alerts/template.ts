import type { AlertRecord } from '../../shared/schemas/index.js';

/** The text each placeholder stands for (TEMPLATE_FIELDS in shared/schemas/alerts.ts). */
function fields(r: AlertRecord): Record<string, string> {
  return {
    alert_id: r.alert_id,
    rule: r.rule,
    severity: r.severity,
    device_id: r.device_id,
    camera: r.camera ?? '',
    model: `${r.model.name}@${r.model.version}`,
    time: r.ts,
    label: r.label,
    score: String(Math.round(r.score * 1e4) / 1e4),
    count: String(r.count),
    detections: JSON.stringify(r.detections),
    json: JSON.stringify(r),
  };
}

/**
 * `{{name}}` replaced by the alert's field, as text. Names were checked at load, so an unknown
 * one cannot reach here; it is left as written rather than guessed.
 */
export function renderTemplate(template: string, r: AlertRecord): string {
  const f = fields(r);
  return template.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (whole, name: string) => f[name] ?? whole);
}
