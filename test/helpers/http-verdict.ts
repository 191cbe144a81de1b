/** `verdict/source` of one lookup through the real service's HTTP API (GET /v1/recipients/{address}). */
export async function verdictOf(port: number, address: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/recipients/${address}`);
  const body = (await res.json()) as { verdict: string; source: string };
  return `${body.verdict}/${body.source}`;
}
