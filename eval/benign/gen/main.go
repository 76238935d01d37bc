// Command gen writes the benign corpus (eval/benign/corpus.jsonl): values a
// real API sees every day, one JSON object {"kind","value"} a line. It is
// deterministic (fixed seed), so the committed file is reproducible:
//
//	cd eval && go run ./benign/gen > benign/corpus.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

type value struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

var (
	rng  = rand.New(rand.NewPCG(16, 3))
	seen = map[string]bool{}
	out  []value
)

func pick[T any](xs []T) T { return xs[rng.IntN(len(xs))] }

// add keeps n distinct values of kind made by f (giving up after many
// repeats, so a small template space cannot loop forever).
func add(kind string, n int, f func() string) {
	for got, tries := 0, 0; got < n && tries < n*50; tries++ {
		v := f()
		if seen[v] {
			continue
		}
		seen[v] = true
		out = append(out, value{kind, v})
		got++
	}
}

var (
	firsts = []string{"Liam", "Siobhan", "Mary", "Patrick", "Aoife", "Sean", "Giulia", "Marco", "Chloé", "François", "Jürgen", "Zoë", "Renée", "Noah", "Olivia", "Ahmed", "Fatima", "Yuki", "Hiroshi", "Olga", "Dmitri", "Anne-Marie", "Jean-Luc", "Ngozi", "Kwame", "Priya", "Raj", "Ana", "José", "Björn"}
	lasts  = []string{"O'Brien", "O'Connor", "D'Angelo", "D'Souza", "O'Neill", "McDonald", "Smith-Jones", "van der Berg", "de la Cruz", "L'Estrange", "D'Arcy", "O'Sullivan", "Dell'Acqua", "N'Diaye", "Müller", "Nakamura", "Ivanova", "García Márquez", "St. John", "Le Blanc", "O'Hara", "D'Amato", "Fitzgerald", "Ó Súilleabháin", "MacLeod"}
	titles = []string{"", "Dr. ", "Mr. ", "Ms. ", "Prof. ", "Mrs. "}

	streets = []string{"Main Street", "Baker St.", "O'Connell Street", "Rue de l'Église", "Königstraße", "Via dell'Orso", "5th Avenue", "Elm Rd", "Church Lane", "Market Sq.", "Union Street", "Selection Way", "Drop Lane", "Old Mill Rd (rear entrance)"}
	cities  = []string{"Dublin, D02 XY45", "London SW1A 1AA", "Paris 75004", "Berlin 10115", "Roma 00186", "New York, NY 10001", "Springfield, IL 62701", "Toronto, ON M5V 2T6", "Sydney NSW 2000", "Cork T12 R2NC", "München 80331"}
	units   = []string{"", "Apt 4B, ", "Suite #200, ", "Flat 3, ", "Unit 12-A, ", "c/o Jane D'Arcy, ", "PO Box 77, "}

	words = []string{"select", "union", "drop", "having", "order", "from", "where", "update", "delete", "insert", "script", "alert", "exec", "table", "join", "group", "like", "and", "or", "not", "null", "sleep", "cat", "echo", "eval", "system", "import", "include"}
)

func names() string {
	return pick(titles) + pick(firsts) + " " + pick(lasts)
}

func address() string {
	return fmt.Sprintf("%s%d %s, %s", pick(units), 1+rng.IntN(999), pick(streets), pick(cities))
}

var markdowns = []string{
	"## Steps to reproduce\n\n1. Open the *settings* page\n2. Click **Save**\n3. See the error (it says `null`)",
	"> Quote from the docs: \"use `SELECT` sparingly\"\n\nThanks!",
	"- [x] update the README\n- [ ] drop the old table once we've migrated\n- [ ] union of both lists",
	"```python\nfor item in items:\n    print(item['name'])\n```\nThis loops over %s.",
	"See [the guide](https://docs.example.com/guide#%s) for details. _Note:_ it's a draft.",
	"| col | value |\n|-----|-------|\n| a   | %s    |\n| b   | 2     |",
	"**TL;DR** — we chose option (b) because it's simpler; %s is out of scope.",
	"# Release notes\n\n* Fixed: crash when the name contains an apostrophe (O'Brien)\n* Added: %s support",
	"Inline code: `git log --oneline | head -5` and `ls -la ~/projects`; also %s.",
	"```js\nconst total = items.reduce((a, b) => a + b.price, 0);\nconsole.log(`total: ${total}`);\n```",
	"```sql\n-- example from the tutorial\nSELECT name, price FROM products WHERE price < 10 ORDER BY price;\n```",
	"```bash\ncurl -s https://api.example.com/v1/items | jq '.[] | .name'\n```",
	"1. Preheat the oven to 180°C\n2. Mix flour & sugar\n3. Bake for 25–30 min (check with a toothpick)",
}

var codes = []string{
	"// TODO(%s): handle the error case when x < 0 && y > 10",
	"if (a > b) { return a; } else { return b; } // picks the max",
	"def greet(name):\n    return f\"Hello, {name}!\"  # %s",
	"for (let i = 0; i < arr.length; i++) { sum += arr[i]; }",
	"SELECT COUNT(*) FROM orders WHERE status = 'shipped' -- how many did we ship for %s?",
	"public static void main(String[] args) { System.out.println(\"hi\"); }",
	"x = [i**2 for i in range(10) if i %% 2 == 0]",
	"const user = await db.users.findOne({ email: req.body.email }); // %s",
	"fn main() { println!(\"{}\", 1 + 2); }",
	"#include <stdio.h>\nint main(void) { printf(\"%%d\\n\", 42); return 0; }",
	"let re = /^[a-z0-9._%%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$/i; // email check",
	"<?php echo htmlspecialchars($title); ?> is how we print the %s title",
	"ALTER TABLE users ADD COLUMN nickname TEXT; -- migration 0042 (%s)",
	"docker run --rm -p 8080:80 nginx:alpine  # local test of %s",
	"git commit -m \"fix: don't drop the %s cache on reload\"",
	"kubectl get pods -n %s | grep Running",
	"func (s *Server) Close() error { return s.ln.Close() } // %s",
}

var topics = []string{"billing", "the search page", "invoices", "user profiles", "exports", "the mobile app", "our API", "Q3 planning", "the onboarding flow", "dark mode", "caching", "reports", "the checkout"}

func markdown() string {
	return fill(pick(markdowns), pick(topics))
}

func code() string {
	return fill(pick(codes), pick(topics))
}

func fill(t, s string) string {
	if strings.Count(t, "%s") == 1 {
		return strings.Replace(t, "%s", s, 1)
	}
	return strings.ReplaceAll(t, "%%", "%")
}

var (
	products = []string{"Widget", "Gadget Pro", "O'Reilly book", "Café crème", "USB-C cable (2 m)", "Desk lamp", "Chair \"Ergo\"", "Notebook A5", "Tea & biscuits", "Select Blend Coffee"}
	tags     = []string{"new", "sale", "union-made", "drop-ship", "select", "eco", "limited"}
)

func jsonDoc() string {
	switch rng.IntN(4) {
	case 0:
		return fmt.Sprintf(`{"id": %d, "name": %q, "price": %d.%02d, "tags": [%q, %q], "in_stock": %v}`,
			rng.IntN(100000), pick(products), rng.IntN(500), rng.IntN(100), pick(tags), pick(tags), rng.IntN(2) == 0)
	case 1:
		return fmt.Sprintf(`{"user": {"name": %q, "address": %q}, "note": "call before 5pm (office)"}`, names(), address())
	case 2:
		return fmt.Sprintf(`[{"op": "replace", "path": "/name", "value": %q}, {"op": "remove", "path": "/tags/%d"}]`, names(), rng.IntN(5))
	default:
		return fmt.Sprintf("{\n  \"query\": %q,\n  \"filters\": {\"from\": \"2024-0%d-01\", \"to\": null},\n  \"order\": \"desc\"\n}", search(), 1+rng.IntN(9))
	}
}

func xmlDoc() string {
	switch rng.IntN(4) {
	case 0:
		return fmt.Sprintf("<?xml version=\"1.0\"?>\n<order id=\"%d\">\n  <customer>%s</customer>\n  <item qty=\"%d\">%s</item>\n</order>",
			rng.IntN(99999), xmlEsc(names()), 1+rng.IntN(9), xmlEsc(pick(products)))
	case 1:
		return fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\n  <soap:Body>\n    <GetPrice xmlns=\"http://example.com/stock\">\n      <Item>%s</Item>\n    </GetPrice>\n  </soap:Body>\n</soap:Envelope>",
			xmlEsc(pick(products)))
	case 2:
		return fmt.Sprintf("<?xml version=\"1.0\"?>\n<note>\n  <to>%s</to>\n  <from>%s</from>\n  <body>%s</body>\n</note>", xmlEsc(names()), xmlEsc(names()), xmlEsc(prose()))
	default:
		return fmt.Sprintf("<?xml version=\"1.0\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>%s</title><updated>%s</updated><link href=\"%s\"/></feed>",
			xmlEsc(pick(topics)), date(), urlv())
	}
}

func xmlEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\"", "&quot;").Replace(s)
}

var htmls = []string{
	"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>%s</title></head>\n<body><p>Hello!</p></body>\n</html>",
	"<!DOCTYPE html><html><body><h1>%s</h1><ul><li>one</li><li>two</li></ul></body></html>",
	"<!DOCTYPE html>\n<p>Thanks for your order of <strong>%s</strong>.</p>",
	"<p>See <a href=\"https://example.com/help\">the help page</a> about %s.</p>",
	"<table><tr><th>Name</th></tr><tr><td>%s</td></tr></table>",
	"<b>Important:</b> the %s meeting moved to <em>Tuesday</em>.",
	"<img src=\"/static/logo.png\" alt=\"%s logo\" width=\"120\">",
	"<div class=\"note\">Remember to bring %s.</div>",
}

func html() string { return fill(pick(htmls), xmlEsc(pick(append(products, topics...)))) }

var i18n = []string{
	"Sehr geehrte Damen und Herren, bitte senden Sie mir die Rechnung für %d Stück.",
	"Die Lieferung (Bestellnummer %d) kommt am Montag – vielen Dank für Ihre Geduld!",
	"Straße, Größe, Übergröße: bitte prüfen Sie die Angaben zu Artikel %d.",
	"Bonjour, je voudrais réserver une table pour %d personnes ce soir à 20h.",
	"L'hôtel est à deux pas de la gare ; comptez environ %d minutes à pied.",
	"Qu'est-ce que c'est ? C'est l'été, on part en vacances le %d juillet.",
	"ご注文ありがとうございます。注文番号は%dです。",
	"東京駅から徒歩%d分のところにあります。",
	"明日の会議は午後%d時からです（会議室B）。",
	"شكرا لك على طلبك رقم %d، سيصل خلال ثلاثة أيام.",
	"مرحبا، أود حجز غرفة لشخصين لمدة %d ليال.",
	"Здравствуйте! Ваш заказ №%d уже отправлен.",
	"Пожалуйста, позвоните мне после %d часов вечера.",
	"Москва, ул. Тверская, д. %d, кв. 5",
	"¿Dónde está la estación? Está a %d minutos de aquí.",
	"Grazie mille! L'ordine n. %d è arrivato ieri.",
}

func intl() string {
	t := pick(i18n)
	return fmt.Sprintf(t, 2+rng.IntN(27))
}

var hosts = []string{"example.com", "www.example.org", "api.example.net", "docs.python.org", "en.wikipedia.org", "github.com", "maps.example.com", "shop.example.co.uk"}
var paths = []string{"/", "/search", "/wiki/SQL", "/products/123", "/docs/select-statement", "/blog/2024/05/union-station", "/a/b/c.html", "/users/o'brien", "/files/report.pdf", "/index.php", "/en-US/docs/Web/CSS"}

func urlv() string {
	u := "https://" + pick(hosts) + pick(paths)
	switch rng.IntN(4) {
	case 0:
		u += fmt.Sprintf("?q=%s&page=%d", strings.ReplaceAll(search(), " ", "+"), 1+rng.IntN(9))
	case 1:
		u += fmt.Sprintf("?utm_source=newsletter&utm_campaign=%s#section-%d", pick(tags), rng.IntN(9))
	case 2:
		u += fmt.Sprintf("?id=%d&sort=name,desc", rng.IntN(99999))
	}
	return u
}

var cssProps = []string{"color: #%06x", "margin: %dpx auto", "font-family: 'Helvetica Neue', Arial, sans-serif", "background: url(/img/bg-%d.png) no-repeat", "width: calc(100%% - %dpx)", "display: flex; justify-content: space-between", "border: 1px solid rgba(0,0,0,.%d)", "transform: rotate(%ddeg)", "font-size: %dpx; line-height: 1.5", "padding: %dpx 8px; text-align: left"}

func css() string {
	n := 1 + rng.IntN(3)
	parts := make([]string, n)
	for i := range parts {
		p := pick(cssProps)
		switch {
		case strings.HasPrefix(p, "color"):
			p = fmt.Sprintf(p, rng.IntN(0x1000000))
		case strings.Contains(p, "%d"):
			p = fmt.Sprintf(p, 1+rng.IntN(48))
		default:
			p = strings.ReplaceAll(p, "%%", "%")
		}
		parts[i] = p
	}
	return strings.Join(parts, "; ") + ";"
}

var winDirs = []string{`C:\Windows\System32`, `C:\Program Files\Example App`, `C:\Program Files (x86)\Common Files`, `D:\Data\Reports\2024`, `C:\Users\Public\Documents`, `\\fileserver\share\team`, `C:\Users\jdoe\AppData\Local\Temp`, `E:\Backups`}
var winFiles = []string{`drivers\etc\hosts`, `notepad.exe`, `Q3 report (final).xlsx`, `setup.log`, `config.ini`, `O'Brien letter.docx`, `photos\IMG_0042.JPG`, ``}

func winpath() string {
	p := pick(winDirs)
	if f := pick(winFiles); f != "" {
		p += `\` + f
	}
	return p
}

var proseT = []string{
	"Please select the option that suits you best (you can change it later).",
	"We're having fun at the beach (weather permitting) — see you on %s!",
	"Feel free to drop by the office any time after 3 (or call first).",
	"The union meeting is on %s; bring your questions (and snacks).",
	"Having said that, I'd rather not drop the feature entirely.",
	"Select two or three colours from the list, then press Continue.",
	"My order from %s was delayed (again), can you check?",
	"I'll drop off the keys and update the spreadsheet (the shared one).",
	"Could you please insert a line break after each item? Thanks (really)!",
	"The European Union (EU) has 27 member states as of %s.",
	"Is it possible to delete my account and all related data (GDPR)?",
	"Where can I find the table of contents (page 3, I think)?",
	"What's the difference between 'or' and 'and' in the filter?",
	"Sleep well, and don't forget: the train leaves at 7 (sharp).",
	"I was having trouble logging in from my phone (Android 14).",
	"Order by price, then by rating (highest first), please.",
	"We had a drop in sales on %s — nothing to worry about (seasonal).",
	"You can't select more than 5 items; if you need more, drop us a line.",
	"Grandma's recipe calls for 2 cups of flour (sifted) and 1 egg.",
	"Note to self: update the script before %s, then run it once.",
	"It's 1 or 2 minutes' walk from the station (turn left at the café).",
	"The cat sat on the mat; echo chambers are a real problem online.",
}

func prose() string { return fill(pick(proseT), date()) }

var sqlProseT = []string{
	"In the lesson we wrote SELECT * FROM customers WHERE country = 'Ireland' and got %d rows.",
	"Tip: never run DELETE FROM orders without a WHERE clause (ask me how I know).",
	"The query `SELECT name FROM users ORDER BY created_at DESC LIMIT %d` is slow; any ideas?",
	"Use UNION ALL instead of UNION when duplicates don't matter, it skips the sort.",
	"Our DBA said: \"DROP TABLE is forever\" — so we rename tables first and drop them after %d days.",
	"Why does SELECT COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1 return duplicates only?",
	"I tried INSERT INTO logs (msg) VALUES ('hello') and it worked in the console.",
	"The book explains joins: SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id.",
	"Exercise %d: write an UPDATE statement that raises every price by 10 percent.",
	"Is 'OR 1=1' really how people hacked sites in the 2000s? Asking for a history essay.",
}

func sqlProse() string {
	t := pick(sqlProseT)
	if strings.Contains(t, "%d") {
		return fmt.Sprintf(t, 2+rng.IntN(500))
	}
	return t
}

func price() string {
	a, c := rng.IntN(5000), rng.IntN(100)
	switch rng.IntN(6) {
	case 0:
		return fmt.Sprintf("$%d.%02d", a, c)
	case 1:
		return fmt.Sprintf("€%d,%02d", a, c)
	case 2:
		return fmt.Sprintf("%d.%02d EUR (incl. VAT)", a, c)
	case 3:
		return fmt.Sprintf("£%d.%02d + £4.99 shipping", a, c)
	case 4:
		return fmt.Sprintf("¥%d,%03d", 1+rng.IntN(99), rng.IntN(1000))
	}
	return fmt.Sprintf("%d.%02d - %d%% off = %d.%02d", a, c, 5*(1+rng.IntN(10)), a/2, c)
}

var mailUsers = []string{"john.smith", "mary.o'brien", "j.dangelo", "support", "billing+invoices", "anne-marie", "first_last", "x", "info", "noreply", "sean.o.connor"}
var mailHosts = []string{"example.com", "mail.example.org", "example.co.uk", "uni.example.edu", "example.ie", "sub.example.de"}

func email() string {
	return fmt.Sprintf("%s%d@%s", pick(mailUsers), rng.IntN(100), pick(mailHosts))
}

func phone() string {
	switch rng.IntN(5) {
	case 0:
		return fmt.Sprintf("+1 (%03d) %03d-%04d", 200+rng.IntN(799), rng.IntN(1000), rng.IntN(10000))
	case 1:
		return fmt.Sprintf("+353 1 %03d %04d", rng.IntN(1000), rng.IntN(10000))
	case 2:
		return fmt.Sprintf("+49 30 %08d", rng.IntN(100000000))
	case 3:
		return fmt.Sprintf("0%d %d %d ext. %d", 1+rng.IntN(9), 100+rng.IntN(900), 1000+rng.IntN(9000), rng.IntN(500))
	}
	return fmt.Sprintf("+81-3-%04d-%04d", rng.IntN(10000), rng.IntN(10000))
}

var months = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}

func date() string {
	y, m, d := 2000+rng.IntN(30), 1+rng.IntN(12), 1+rng.IntN(28)
	switch rng.IntN(5) {
	case 0:
		return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	case 1:
		return fmt.Sprintf("%02d/%02d/%04d", d, m, y)
	case 2:
		return fmt.Sprintf("%s %d, %d", months[m-1], d, y)
	case 3:
		return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:00Z", y, m, d, rng.IntN(24), rng.IntN(60))
	}
	return fmt.Sprintf("%d %s %d", d, months[m-1], y)
}

var searchT = []string{"cheap flights to %s", "how to select multiple files on mac", "union station %s", "drop shipping suppliers", "best restaurants near %s", "having fun with kids %s", "%s weather tomorrow", "python list comprehension", "select all shortcut windows", "what is a sql join", "o'brien family history", "d'angelo concert tickets", "rock & roll hall of fame", "c++ vs rust", "100% cotton t-shirts", "\"exact phrase\" search", "-exclude this word", "price < 50 shoes", "where to drop off old batteries", "how to delete a page in word", "update iphone to ios 18", "insert symbol in excel", "order of operations math", "kitchen table and chairs", "sleep tracker app", "alert dog breeds", "script writing course", "echo dot setup", "cat food brands", "import car from %s"}
var places = []string{"Dublin", "Paris", "Chicago", "Tokyo", "Berlin", "Cork", "Lisbon", "Denver", "Kyoto", "Montréal"}

var searchSuffix = []string{"", "", " 2024", " near me", " reviews", " (free)", " for beginners", " vs alternatives"}

func search() string { return fill(pick(searchT), pick(places)) + pick(searchSuffix) }

func main() {
	add("name", 150, names)
	add("address", 150, address)
	add("markdown", 100, markdown)
	add("code", 120, code)
	add("json", 120, jsonDoc)
	add("xml", 120, xmlDoc)
	add("html", 90, html)
	add("i18n", 150, intl)
	add("url", 150, urlv)
	add("css", 100, css)
	add("winpath", 60, winpath)
	add("prose", 150, func() string {
		n := 1 + rng.IntN(3)
		s := make([]string, n)
		for i := range s {
			s[i] = prose()
		}
		return strings.Join(s, " ")
	})
	add("sql-prose", 100, func() string { return sqlProse() + " " + prose() })
	add("price", 100, price)
	add("email", 150, email)
	add("phone", 120, phone)
	add("date", 120, date)
	add("search", 200, search)

	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, v := range out {
		if err := enc.Encode(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gen: %d values\n", len(out))
}
