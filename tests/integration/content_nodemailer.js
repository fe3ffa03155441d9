// Composes content_test.cc's nodemailer messages with nodemailer's own
// MailComposer (compile().build()), as a Node.js application sends mail, and
// writes each to OUTDIR/<KIND>.eml. Usage: node content_nodemailer.js
// NPM_PREFIX OUTDIR, where NPM_PREFIX holds node_modules/nodemailer (the test
// installs it there with `npm install --no-save --prefix`).
'use strict';
const fs = require('fs');
const path = require('path');

const [prefix, outdir] = process.argv.slice(2);
// Resolved through the package's own exports map, as an application's require() would.
const MailComposer = require(require.resolve('nodemailer/lib/mail-composer', { paths: [path.resolve(prefix)] }));

const messages = {
  NMALT: {
    from: 'Spedizioni <noreply@shop.example.com>',
    to: '+393331234567@sms.example.com',
    subject: 'Il tuo pacco',
    text: 'Il pacco è in consegna oggi tra le 14 e le 18.',
    html: '<p>Il pacco è in consegna <b>oggi</b> tra le 14 e le 18.</p>',
  },
  NMLONG: {
    from: 'Banca <avvisi@bank.example.com>',
    to: '+393331234567@sms.example.com',
    subject: 'Saldo',
    text: 'Gentile cliente,\nil saldo del suo conto è di 1.250,00 € alla data odierna. Le ricordiamo che la ' +
      'prossima rata di 320,00 € scade il 15 del mese. Per informazioni risponda a questo messaggio o chiami ' +
      'il servizio clienti.',
  },
};

let pending = Object.keys(messages).length;
for (const [kind, mail] of Object.entries(messages)) {
  new MailComposer(mail).compile().build((err, message) => {
    if (err) {
      console.error(kind + ': ' + err.message);
      process.exit(1);
    }
    fs.writeFileSync(path.join(outdir, kind + '.eml'), message);
    if (--pending === 0) process.exit(0);
  });
}
