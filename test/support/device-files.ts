/** Device files for import tests. */

/** A CSV of `count` devices (every tenth a speaker) with three bad rows at known lines. */
export function deviceCsv(count: number, prefix: string): { text: string; badLines: Record<number, string> } {
  const lines = ['device_id,type,msisdn,name,endpoint,enabled,metadata'];
  for (let index = 0; index < count; index++) {
    const number = `+7916${String(1_000_000 + index).padStart(7, '0')}`;
    lines.push(
      index % 10 === 0
        ? `${prefix}-${index},speaker,${number},Speaker ${index},http://127.0.0.1:9000/notify,true,"{""room"": ""hall""}"`
        : `${prefix}-${index},sensor_smoke,8 (916) ${String(index).padStart(3, '0').slice(-3)}-45-67,,,,`,
    );
  }
  // Line n of the file is lines[n - 1].
  lines[1234 - 1] = `${prefix}-bad-number,sensor_smoke,12,,,,`;
  lines[5000 - 1] = `${prefix}-bad-type,toaster,+79161234567,,,,`;
  lines[9999 - 1] = `${prefix}-no-endpoint,speaker,+79161234567,,,,`;
  return {
    text: `${lines.join('\n')}\n`,
    badLines: { 1234: 'msisdn', 5000: 'type', 9999: 'endpoint' },
  };
}
