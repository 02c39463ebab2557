/**
 * A borderline message for the spam classifier's per-tenant learning tests: half mortgage offer
 * (words the shipped model has seen only in spam), half mailing-list chatter (words it has seen
 * only in ham). The shipped model puts it in the unsure band (delivered, tagged); a tenant's spam
 * labels on messages like it tip it to spam for that tenant.
 */
export function borderlineMessage(opts: { to: string; from?: string; n?: number }): Buffer {
  const from = opts.from ?? 'dana@partner.example';
  const n = opts.n ?? 1;
  const body =
    'Hi, a bunch of lenders now refinance mortgage loans for homeowners at fairly good rates, payable monthly with a residual annuity, free quote, no obligation. ' +
    'I put the details in the shared folder and the thread on the repository, the command and the patch are there too. Cheers';
  return Buffer.from(
    [
      `From: Dana <${from}>`,
      `To: ${opts.to}`,
      'Subject: Rates for the folder',
      'Date: Thu, 28 Nov 2024 10:00:00 +0000',
      `Message-ID: <rates${n}x${Date.now()}@partner.example>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      body,
      '',
    ].join('\r\n'),
  );
}
