"""Prints the messages of the Maildir in argv[1] as a JSON list of
{"to", "from", "subject", "message_id", "parts": [{"type", "body"}]}."""
import json
import mailbox
import sys

out = []
for msg in mailbox.Maildir(sys.argv[1], create=False):
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        parts.append({
            "type": part.get_content_type(),
            "body": part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8"),
        })
    out.append({
        "to": msg.get_all("To", []),
        "from": msg.get("From"),
        "subject": msg.get("Subject"),
        "message_id": msg.get("Message-ID"),
        "parts": parts,
    })
print(json.dumps(out))
