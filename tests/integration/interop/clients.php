<?php
// The interop matrix's PHP client (interop_matrix_test.cc): sends the text
// read from stdin (UTF-8) with PHPMailer (Debian's libphp-phpmailer) over
// SMTP with AUTH. Usage: php clients.php default|latin1 PORT USER PASSWORD.
// "default" leaves PHPMailer's CharSet at its default, ISO-8859-1, over the
// UTF-8 text, as most PHP scripts do (issue 13 item 4); "latin1" converts the
// text to ISO-8859-1 first, so the declaration is true. Prints one JSON
// object: PHPMailer's and PHP's versions and the server's reply to the
// message. Exits 77 (skipped) with the reason on stderr when PHPMailer is
// missing. Bounds its own time with PHPMailer's Timeout.

$autoload = '/usr/share/php/libphp-phpmailer/autoload.php';
if (!is_readable($autoload)) {
    fwrite(STDERR, "PHPMailer not installed ($autoload); scripts/deps installs libphp-phpmailer\n");
    exit(77);
}
require $autoload;

[, $variant, $port, $user, $password] = $argv;
$text = stream_get_contents(STDIN);
$reply = '';
if ($variant === 'latin1') {
    $text = iconv('UTF-8', 'ISO-8859-1', $text);
}

$mail = new PHPMailer\PHPMailer\PHPMailer(true);
$mail->isSMTP();
$mail->Host = '127.0.0.1';
$mail->Port = (int) $port;
$mail->SMTPAuth = true;
$mail->Username = $user;
$mail->Password = $password;
$mail->Timeout = 20;
// send() keeps the server's replies to itself: its debug output shows them,
// and the reply to the message is the server line after the client's ".".
$dialogue = [];
$mail->SMTPDebug = PHPMailer\PHPMailer\SMTP::DEBUG_SERVER;
$mail->Debugoutput = function ($line) use (&$dialogue) { $dialogue[] = rtrim($line); };
$mail->setFrom('+393401234567@sms.example.com');
$mail->addAddress('+393331234567@sms.example.com');
$mail->Subject = 'prova';
$mail->Body = $text;
try {
    $mail->send();
} catch (PHPMailer\PHPMailer\Exception $e) {
    $reply = $e->getMessage();
}
$after_data = false;
foreach ($dialogue as $line) {
    if ($line === 'CLIENT -> SERVER: .') {
        $after_data = true;
    } elseif ($after_data && strncmp($line, 'SERVER -> CLIENT: ', 18) === 0) {
        $reply = substr($line, 18);
        break;
    }
}
echo json_encode(['version' => 'PHPMailer ' . PHPMailer\PHPMailer\PHPMailer::VERSION . ', PHP ' . PHP_VERSION,
                  'reply' => $reply, 'charset' => $mail->CharSet]), "\n";
