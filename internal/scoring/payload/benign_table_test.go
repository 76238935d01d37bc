package payload

import (
	"context"
	"testing"
)

// benignValues are realistic values that naive WAF rules (and older
// versions of this package) block. None may block, wherever it arrives.
var benignValues = []string{
	"while(!true);", "process.", "console.", "localhost", "mylocalhost", "example.com/",
	"https://example.com/search?q=1", "the http? header", "console.log(`total: ${total}`);\nreturn 1",
	"We use constructor injection here.", "__proto__ is deprecated",
	// XML and HTML documents.
	`<?xml version="1.0"?><order><id>42</id><item>Headphones</item></order>`,
	`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<note><to>Tove</to><from>Jani</from><body>Don't forget me this weekend!</body></note>`,
	`<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetPrice xmlns="http://example.com/stock"><Item>Apples</Item></GetPrice></soap:Body></soap:Envelope>`,
	`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><feed xmlns="http://www.w3.org/2005/Atom"><title>News</title></feed>`,
	`<!DOCTYPE html><html><head><title>Invoice</title></head><body><p>Thanks for your order.</p></body></html>`,
	`<!doctype html><html lang="en"><body><h1>Hello</h1></body></html>`,
	`<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24"><path d="M12 2L2 7l10 5 10-5-10-5z"/></svg>`,
	`<rss version="2.0"><channel><title>Blog</title><link>https://example.com/</link></channel></rss>`,
	`<p style="color: red; margin: 0">Warning</p>`,
	`<table class="grid"><tr><td>1</td><td>2</td></tr></table>`,
	"<note: style guide applies>",
	"if a < b c d then swap",
	"Use the alert() helper in tests, then call setInterval(tick, 1000) twice",
	"The ansible role installs nginx",
	"time to ship",
	"/usr/local/bin/python3",
	"{a,b,c}",
	"ALTER TABLE users ADD COLUMN nickname TEXT; -- migration 0042",
	"CREATE TABLE orders (id int primary key, total numeric)",
	"see section 1.e.g. below",
	"Type::Integer and Foo::Text are Ruby constants",
	"cast it with ::int in your head",
	"if (x == 1) { y = 2 }",
	"Select all items",
	"Great job!!",
	"& more",
	"; see also",
	// CSS.
	`color: red; margin: 0`,
	`font-family: "Helvetica Neue", Arial, sans-serif; font-size: 14px;`,
	`background: #fff url("/img/bg.png") no-repeat; padding: 4px 8px`,
	`.btn-primary { color: #fff; background-color: #007bff; }`,
	`@media (max-width: 600px) { .nav { display: none; } }`,
	`width: calc(100% - 2rem); transition: all 0.3s ease-in-out;`,
	// Windows and Unix paths.
	`C:\Windows\System32`,
	`C:\Program Files (x86)\Microsoft Office\root\Office16\WINWORD.EXE`,
	`D:\backups\2024-05-01\db.bak`,
	`\\fileserver\share\reports\Q1.xlsx`,
	`%APPDATA%\Mozilla\Firefox\Profiles`,
	`/usr/local/bin/node`,
	`/home/alice/projects/app/src/index.ts`,
	`~/Downloads/photo (1).jpg`,
	`../assets/logo.svg`,
	`./node_modules/.bin/eslint`,
	// Prose.
	`we were having fun (really)`,
	`To select all rows, write select * from users where id = 1 in the console.`,
	`Please update my address (new flat) and delete the old one from my account.`,
	`I'd like to order 2 (two) more; the first one broke after a week.`,
	`Union Station is 5 min from the hotel, or 10 min by bus.`,
	`Can you drop the price? It's 20% more than elsewhere.`,
	`Where's my order #12345? It says "shipped" since Monday.`,
	`My name is O'Brien and my wife's is D'Souza.`,
	`It's a 2-for-1 deal: buy one, get one free!`,
	`The meeting is at 10:00 (CET) — please don't be late.`,
	`We sell tables, chairs & more; visit us at 12 Main St.`,
	`"Quoted" text and 'single quotes' in the same sentence.`,
	`I can't log in: it says "invalid password" (error 401).`,
	`The cat sat on the mat; the dog sat on the log.`,
	`Sleep well and exec-level coaching are both in the package.`,
	`Order by Friday to get it by Monday.`,
	`Insert the SIM card, then select "Settings" > "Network".`,
	`She said: "Let's meet at 5 & have dinner."`,
	`1 + 1 = 2, and 2 * 3 = 6 (basic math).`,
	`Is 5 > 3? Yes. Is 2 < 1? No.`,
	`Price: $19.99 (was $29.99) — save $10!`,
	`Version 2.0 (beta) — see the changelog for details.`,
	`He's 6'2" and she's 5'6".`,
	`Rock 'n' roll never dies -- long live rock!`,
	`Tea or coffee? Either is fine; milk, no sugar.`,
	`I tried everything: restart, reinstall, even prayed (lol).`,
	`Ask the system administrator to reset your password.`,
	`The id of the product is 42; the name is "Lamp".`,
	`Who am I? A developer who loves cats | dogs | birds.`,
	`This <b>bold</b> claim needs a <i>citation</i>.`,
	`Temperatures will be between -5 and 3 degrees.`,
	`Comment: great service!!! 10/10 would recommend :-)`,
	`See you @ the conference #devops2024`,
	`Here is the sum: 1,234.56 + 7,890.12 = 9,124.68`,
	`Ping me when you're back; let's sync on the plan.`,
	`cat lovers unite: head to our forum for tips`,
	`type your name here`,
	`Set-up guide: step 1) unbox; step 2) plug in; step 3) enjoy`,
	// Markdown and code snippets.
	"## Install\n\n```bash\nnpm install --save my-lib\n```",
	"Run `npm test` before pushing.",
	"```js\nconst x = items.filter(i => i.price > 10);\n```",
	"```go\nif err != nil {\n\treturn fmt.Errorf(\"open: %w\", err)\n}\n```",
	"```python\nwith open('data.csv') as f:\n    rows = list(csv.reader(f))\n```",
	"```sql\nSELECT name, email FROM customers WHERE country = 'IE' ORDER BY name;\n```",
	"* item one\n* item two\n* **bold** and _italic_",
	"> quoted reply\n\nThanks!",
	"[docs](https://example.com/docs) and ![logo](/img/logo.png)",
	"| a | b |\n|---|---|\n| 1 | 2 |",
	`const greet = (name) => ` + "`Hello, ${name}!`;",
	`SELECT * FROM orders`,
	`x = y ? 1 : 0;`,
	`{"nested": "json in a string", "n": 1}`,
	`def f(x): return x * 2`,
	`for i in range(10): print(i)`,
	`npm run build && npm run test`,
	`git log --oneline -5`,
	`docker run -p 8080:80 nginx`,
	// Identifiers, URLs and data.
	`Hello {{name}}, your order {{order_id}} has shipped.`,
	`Dear ${firstName},`,
	`https://example.com/callback?code=abc123&state=xyz`,
	`http://localhost:3000/auth/callback`,
	`https://cdn.example.com/img/a.png?w=200&h=100`,
	`mailto:support@example.com`,
	`tel:+15551234567`,
	`data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==`,
	`192.168.1.10`,
	`10.0.0.1:8080`,
	`2001:db8::1`,
	`user_id=42&sort=desc`,
	`sku-12345-XL`,
	`ORD-2024-000123`,
	`550e8400-e29b-41d4-a716-446655440000`,
	`+1 (555) 010-9999 ext. 12`,
	`Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15`,
	`curl/8.5.0`,
	`python-requests/2.31.0`,
	`{"$schema": "http://json-schema.org/draft-07/schema#"}`,
	`price[gte]=10&price[lte]=100`,
	`filter[status]=active`,
	`(555) 123-4567`,
	`N/A`,
	`-`,
	`true`,
	`2024-05-01 10:00:00+02`,
	`Größe: M; Farbe: blau`,
	`Ｔｏｋｙｏ　ｓｔａｔｉｏｎ`,
	`カタカナ（テスト）`,
	`café — naïve — résumé`,
	`50/50 chance; ~3% fee`,
	`a=1; b=2; c=3`,
	`Re: [JIRA] (PROJ-123) Fix login bug`,
	`rO0 is not a word`,
	`email me at bob@example.com (home) or bob@work.example (work)`,
	`Section 3.2(a)(ii) of the agreement`,
	`Q&A: what's new in v3?`,
	`#{hashtag} style is used by our CMS`,
	`The password must contain $, # or ! characters`,
	// XML documents naming Java classes as elements and attributes, a
	// feed with <link href>, an HTML page with <meta charset>, a stack trace.
	`<?xml version="1.0"?><xml><java.lang.Runtime attribute_name="attribute_value">value</java.lang.Runtime></xml>`,
	`<?xml version="1.0"?><xml><element java.lang.ProcessBuilder="attribute_value">element_value</element></xml>`,
	`<?xml version="1.0"?>` + "\n" + `<feed xmlns="http://www.w3.org/2005/Atom"><title>billing</title><link href="https://www.example.org/wiki/SQL?id=99444&sort=name,desc"/></feed>`,
	`<!DOCTYPE html>` + "\n" + `<html lang="en"><head><meta charset="utf-8"><title>Café</title></head><body><p>Hello!</p></body></html>`,
	`Exception in thread "main" java.lang.NullPointerException at com.example.Foo.bar(Foo.java:12)`,
	// Code samples, SQL mentioned in prose, Markdown commands, Windows paths.
	"def greet(name):\n    return f\"Hello, {name}!\"  # billing",
	"SELECT COUNT(*) FROM orders WHERE status = 'shipped' -- how many did we ship for billing?",
	"Is 'OR 1=1' really how people hacked sites in the 2000s? Asking for a history essay.",
	"Inline code: `git log --oneline | head -5` and `ls -la ~/projects`; also dark mode.",
	"```bash\ncurl -s https://api.example.com/v1/items | jq '.[] | .name'\n```",
	`C:\Program Files\Example App\drivers\etc\hosts`,
	"Math.pow(2, 8)", "if (a == b) { x() }", "for each item in (list) do",
	"my mysql server", "Northwind Traders is a sample database",
	"Open the top drawer.", "set window.location to the login page", "[x] done (!)", "/get/javascript-manual/document.cookie",
	"How do I protect wp-config.php and .htaccess on shared hosting?", "D:\\backups\\db.sql.zip is 2 GB",
	"cat food for sensitive stomachs", "I restored /etc/hosts from backup.sql.zip yesterday",
	"get the HTTP/2 spec", "Dear team,\r\nNote: the meeting moved.", "\r\n", "see http://10.0.0.5/status.txt?x=1 for status",
	"PS\r\nThanks: Bob", "Did you and Bob say 'hi'? 'Yes' -> 'ok'", "map 'a' -> 'b' or 'c' -> 2", `\\fileserver\share\team\drivers\etc\hosts`, "Hello\r\n\r\nPS: call me",
	"$.items[0].name", "$[0]", "price <(50) and >(10)", "Hello ${name}, welcome", "x<(y+1)", "the alias for Bob is Robert",
	"alias: bobby", "function () { return 1 }", "I use sh -c rarely", "<<< back to the list",
}

func TestBenignTable(t *testing.T) {
	if len(benignValues) < 100 {
		t.Fatalf("%d benign values, want >= 100", len(benignValues))
	}
	cfg := DefaultConfig()
	cfg.LLM.Mode = LLMOff
	v := newTestValidator(t, cfg)
	for _, val := range benignValues {
		inputs := map[string]*Input{
			"query": inQuery(val),
			"json":  inJSON(val),
		}
		if val[0] == '<' {
			inputs["xml body"] = &Input{Path: "/soap", Body: []byte(val), ContentType: "application/xml"}
			inputs["text body"] = &Input{Path: "/soap", Body: []byte(val), ContentType: "text/xml; charset=utf-8"}
		}
		for shape, in := range inputs {
			if res := v.Inspect(context.Background(), in); res.Action == Block {
				t.Errorf("%s: benign %q blocked: %s %s (findings %+v)", shape, val, res.Reason, res.Rule, res.Findings)
			}
		}
	}
}
