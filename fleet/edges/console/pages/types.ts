import type { SafeHtml, Section } from '../html.js';

/** What a page renders into the frame. */
export interface PageResult {
  title: string;
  section: Section | null;
  body: SafeHtml;
}
