/** The body parsed as JSON, or undefined when it is not JSON (error pages, redirects). */
export function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
