#!/usr/bin/env python3
"""Generate benign.jsonl: realistic values a public API sees every day.

Each line is {"kind": K, "value": V}. Kinds and how payload_test feeds them:
  query   -> q=<urlencoded value>            name, address, product, misc -> JSON body field
  json    -> application/json body (V is the document)
  form    -> application/x-www-form-urlencoded body (V is the body)
  ua      -> user-agent header               referer -> referer header
Deterministic (seeded); rerun with `python3 gen_benign.py > benign.jsonl`.
Hand-picked lists below hold the hard cases naive filters block: O'Brien,
"SELECT your plan" copy, Markdown with code, HTML-looking JSON strings,
non-English text, URLs with query strings, base64, dates and phones.
"""
import base64, json, random, urllib.parse

rnd = random.Random(20261125)
out = []
def add(kind, value):
    out.append({"kind": kind, "value": value})

first = ["James","Mary","John","Patricia","Robert","Jennifer","Michael","Linda","Seán","Siobhán",
  "Zoë","José","François","Ingrid","Søren","Łukasz","Dvořák","Müller","Ōtani","Nguyễn","Mohammed",
  "Aisha","Wei","Yuki","Olga","Priya","Chloé","Björn","Renée","Jean-Luc","Mary-Kate","D'Arcy",
  "Anne-Marie","Ana Lucía","محمد","فاطمة","王伟","李娜","田中","Ελένη","Дмитрий","Андрей","שרה","Kofi"]
last = ["O'Brien","O'Neil","D'Angelo","McDonald","Smith-Jones","van der Berg","de la Cruz","García",
  "Müller","Øster","Nowak","Kowalski","Dubois","L'Écuyer","St. John","Al-Farsi","Ó Súilleabháin",
  "Brown","Taylor","Wilson","Singh","Kim","Chen","Ivanov","Rossi","Haddad","Okafor","Papadopoulos",
  "张","أحمد","Schröder","Fernández","Lindqvist","D'Souza","Mc'Kenzie","O'Connor-Smith"]
for _ in range(320):
    n = f"{rnd.choice(first)} {rnd.choice(last)}"
    if rnd.random() < 0.2: n = n.upper() if rnd.random() < .5 else n.lower()
    if rnd.random() < 0.15: n = f"Dr. {n}" if rnd.random() < .5 else f"{n} Jr."
    add("name", n)

streets = ["Baker St","Main Street","rue de l'Église","Königstraße","Calle de Alcalá","O'Connell Street",
  "Av. Paulista","5th Ave","Shore Rd.","Via dell'Orso","Elm St.","Market St","King's Road","Sunset Blvd"]
cities = ["London NW1 6XE","Springfield, IL 62704","Paris 75004","München 80331","Madrid 28014",
  "Dublin 1, D01 F5P2","São Paulo - SP, 01310-100","New York, NY 10001","Sydney NSW 2000",
  "Kraków 31-000","東京都千代田区","القاهرة","Zürich 8001","Montréal (QC) H2X 1Y4"]
for _ in range(220):
    a = f"{rnd.randint(1,9999)}{rnd.choice(['','B','-2','/4',' bis'])} {rnd.choice(streets)}"
    if rnd.random() < .4: a += f", {rnd.choice(['Apt #','Suite ','Unit ','Flat ','c/o '])}{rnd.randint(1,120)}"
    add("address", f"{a}, {rnd.choice(cities)}")

searches = ["men's running shoes size 10","iphone 15 pro max case","how to select a mortgage plan",
  "drop-down menu css","union square restaurants","order by date","Tom & Jerry","C++ tutorial","50% off",
  "rock 'n' roll","\"exact phrase\" search","where is my order?","select all that apply","delete account",
  "update billing address","insert coin","table for two","drop shipping","script writing course",
  "alert sounds for iphone","javascript tutorial for beginners","python vs java","c# async await",
  "1/2 inch drill bit","5'11\" height in cm","4x4 tyres","a+b=c","what does 1=1 mean in logic",
  "cat food","cat /etc explained","pipe | character on keyboard","semicolon; usage","echo dot 5th gen",
  "sleep 8 hours benefits","ls command linux","system of a down","ignore list","previous instructions manual",
  "best prompt for portrait photos","new instructions for form 1040","O'Reilly books","L'Oréal shampoo",
  "güneş kremi","café près de moi","ñandú","北京 天气","مطاعم قريبة","ресторан рядом","東京 ラーメン",
  "Bose QC45 vs Sony WH-1000XM5","usb-c to hdmi 4k@60hz","2024-01-15","+1 (555) 123-4567",
  "#throwbackthursday","@mention etiquette","email@example.com","10am-2pm","$100 gift card","100% cotton",
  "size: M/L","tickets (2 adults)","[draft] report","{placeholder}","<3 gifts","x > 5","a < b","--help",
  "what is /etc/hosts","../ meaning in html","or","and","ASC","Having fun in Paris","Select Comfort mattress",
  "Grant Union High School","Order of the Phoenix","Group by group travel","Like new condition"]
adj = ["cheap","best","new","used","vintage","red","large","organic","wireless","waterproof","kids'","women's"]
noun = ["laptop","sofa","bike","camera","headphones","jacket","coffee maker","tent","watch","desk lamp","sneakers"]
for s in searches: add("query", s)
for _ in range(420):
    q = f"{rnd.choice(adj)} {rnd.choice(noun)}"
    r = rnd.random()
    if r < .2: q += f" under ${rnd.randint(20,900)}"
    elif r < .35: q += f" near {rnd.choice(cities).split(',')[0]}"
    elif r < .45: q = f"\"{q}\""
    elif r < .55: q += " -refurbished"
    elif r < .65: q += f" {rnd.randint(2015,2025)}"
    add("query", q)

desc = ["SELECT your plan today and save 20%!","Drop us a line — we reply within 24h.",
  "Union-made in Ohio. Fits 1/2\" pipes; rated 200 psi.","Choose from 3 colours: red, blue & green.",
  "Order now; ships in 2–3 days.","Our 'Pro' tier includes everything in Basic, plus SSO.",
  "Ignore the noise: this blender just works.","New: updated instructions included in the box.",
  "Compatible with /dev/null-grade patience.","Works with Windows 10/11, macOS 13+ and Linux.",
  "Size 5'11\"–6'2\". Machine washable at 30°C.","Délicieux café torréfié à Lyon.",
  "Hecho a mano en España con cuero genuino.","日本製の高品質な包丁です。","منتج أصلي بضمان سنتين.",
  "Der Rucksack hält 25 l & ist wasserdicht.","Set of 4 (four) glasses — dishwasher safe.",
  "Rated 4.8/5 by 2,300+ customers.","Use code SAVE10 at checkout (exp. 12/31).",
  "Email sales@example.com or call +44 20 7946 0958.","Batteries not included; requires 2× AA.",
  "Perfect for cats & dogs | all ages","Step 1: unbox. Step 2: plug in. Step 3: enjoy!",
  "Delete the old app before installing the update.","Admin panel access for your whole team."]
mat = ["cotton","steel","oak","leather","ceramic","bamboo","aluminium","wool"]
for d in desc: add("product", d)
for _ in range(240):
    add("product", f"{rnd.choice(adj).capitalize()} {rnd.choice(noun)} made of {rnd.choice(mat)}; "
        f"{rnd.randint(1,5)}-year warranty. Dimensions: {rnd.randint(10,99)} x {rnd.randint(10,99)} cm "
        f"({rnd.randint(1,40)}\" / {rnd.randint(1,9)}'{rnd.randint(1,11)}\"). {rnd.choice(desc)}")

uas = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
  "okhttp/4.{m}.0","Dalvik/2.1.0 (Linux; U; Android 13; SM-S911B Build/TP1A.220624.014)",
  "MyApp/3.{m}.1 (com.example.app; build:{v}; iOS 17.{m}.0) Alamofire/5.8.0","python-requests/2.{v}.0",
  "Go-http-client/2.0","PostmanRuntime/7.{v}.0","Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)","axios/1.{m}.2","node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"]
for _ in range(220):
    add("ua", rnd.choice(uas).format(v=rnd.randint(100,131), m=rnd.randint(0,9)))

hosts = ["https://www.google.com/","https://duckduckgo.com/","https://shop.example.com/","https://t.co/",
  "https://news.ycombinator.com/","https://www.bing.com/","https://l.facebook.com/","https://example.org/blog/"]
for _ in range(240):
    h = rnd.choice(hosts)
    params = {"q": rnd.choice(searches), "utm_source": rnd.choice(["newsletter","twitter","google"]),
              "page": str(rnd.randint(1,20))}
    if rnd.random() < .4: params["redirect"] = "https://shop.example.com/cart?item=%d&qty=2" % rnd.randint(1,999)
    if rnd.random() < .2: params["ref"] = "a/b/c"
    add("referer", h + ("search" if "google" in h or "bing" in h else "items/%d" % rnd.randint(1,9999)) + "?" + urllib.parse.urlencode(params))

markdown = [
  "## Steps to reproduce\n\n1. Open the app\n2. Click **Save**\n\n```python\nfor i in range(10):\n    print(i)\n```\n\nExpected: no error.",
  "Here is my config:\n\n```yaml\nserver:\n  port: 8080\n  host: 0.0.0.0\n```\n\nIt fails with `connection refused`.",
  "Use `SELECT id, name FROM users WHERE active` in the report builder? Or is there an export?",
  "```js\nconst total = items.reduce((a, b) => a + b.price, 0);\nconsole.log(`Total: ${total}`);\n```",
  "> Quote from the docs: *the API returns 429 when over quota*\n\nThanks!",
  "| Plan | Price |\n|------|-------|\n| Free | $0 |\n| Pro | $20 |",
  "Run `npm install` then `npm run build`, and open http://localhost:3000/?debug=1",
  "I tried `git pull --rebase` and got a merge conflict in `src/app.ts`.",
  "Formula: E = mc^2; also a^2 + b^2 = c^2 (Pythagoras).",
  "Ce produit est génial ! J'adore la qualité. 5/5 ⭐⭐⭐⭐⭐",
  "这个产品非常好，物流也很快。推荐购买！",
  "المنتج رائع والتوصيل سريع، شكراً لكم",
  "Das Paket kam beschädigt an – bitte um Ersatz (Bestellnr. 12345-678).",
  "Hi team,\n\nCould you update my plan? Select the annual option please.\n\nBest,\nSeán O'Brien",
  "My cat's name is \"Mr. Whiskers\" and he's 3 y/o.",
  "Meeting notes 2024-03-05: agreed to drop the legacy endpoint; union rep to attend.",
]
html = ["<p>Hello <b>world</b></p>","<ul><li>One</li><li>Two</li></ul>","<em>Limited</em> offer",
  "<a href=\"https://example.com/docs?page=2\">Docs</a>","Use &lt;div&gt; for layout","<br/>","<h2>Specs</h2><table><tr><td>5 kg</td></tr></table>",
  "<img src=\"https://cdn.example.com/p/123.jpg\" alt=\"Red shoe\">","Tom &amp; Jerry","&quot;Best&quot; price","<strong>Note:</strong> fragile"]
def b64(n): return base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(n))).decode()
def misc():
    r = rnd.randint(0, 11)
    if r == 0: return f"{rnd.randint(2000,2030)}-{rnd.randint(1,12):02d}-{rnd.randint(1,28):02d}T{rnd.randint(0,23):02d}:{rnd.randint(0,59):02d}:00Z"
    if r == 1: return f"{rnd.randint(1,28)}/{rnd.randint(1,12)}/{rnd.randint(1990,2030)}"
    if r == 2: return rnd.choice(["+1 (555) 123-4567","+44 20 7946 0958","(03) 9123 4567","+49 30 123456-78","555.123.4567","+33 1 23 45 67 89"])
    if r == 3: return b64(rnd.randint(8, 96))
    if r == 4: return "%08x-%04x-4%03x-a%03x-%012x" % (rnd.getrandbits(32), rnd.getrandbits(16), rnd.getrandbits(12), rnd.getrandbits(12), rnd.getrandbits(48))
    if r == 5: return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + b64(30).rstrip("=").replace("+","-").replace("/","_") + "." + b64(32).rstrip("=").replace("+","-").replace("/","_")
    if r == 6: return f"https://example.com/search?q={urllib.parse.quote(rnd.choice(searches))}&page={rnd.randint(1,9)}&sort=-price"
    if r == 7: return f"{rnd.choice(['€','$','£'])}{rnd.randint(1,999)}.{rnd.randint(0,99):02d}"
    if r == 8: return f"{rnd.uniform(-90,90):.6f},{rnd.uniform(-180,180):.6f}"
    if r == 9: return rnd.choice(["#summer2024","@acme_support","ACME-1234","v2.3.1-rc.1","SKU: 12-345/B","N/A","-","—","..."])
    if r == 10: return f"{rnd.choice(first).lower()}.{rnd.choice(['smith','obrien','garcia'])}+{rnd.randint(1,99)}@example.co.uk"
    return rnd.choice(markdown)
for _ in range(260): add("misc", misc())

for _ in range(330):
    r = rnd.random()
    doc = {"id": rnd.randint(1, 10**6), "name": f"{rnd.choice(first)} {rnd.choice(last)}",
           "created_at": misc() if rnd.random() < .3 else "2024-05-0%dT10:00:00Z" % rnd.randint(1,9)}
    if r < .25:
        doc["message"] = rnd.choice(markdown)
    elif r < .45:
        doc["product"] = {"title": rnd.choice(desc), "html": rnd.choice(html), "tags": [rnd.choice(adj), rnd.choice(noun)],
                          "price": {"amount": rnd.randint(1, 999), "currency": "EUR"}}
    elif r < .6:
        doc["address"] = {"line1": out[rnd.randrange(320, 540)]["value"], "phone": rnd.choice(["+1 (555) 123-4567","+44 20 7946 0958"])}
    elif r < .75:
        doc["attachment"] = {"filename": "report (final) v2.pdf", "content_base64": b64(rnd.randint(64, 400))}
        doc["callback_url"] = "https://hooks.example.com/cb?id=%d&sig=%s" % (rnd.randint(1,99999), b64(12))
    elif r < .9:
        doc["messages"] = [{"role": "user", "content": rnd.choice(["Summarise this article in 3 bullet points.",
            "Translate to French: 'Where is the station?'","Write a haiku about autumn.",
            "What's the difference between SELECT and SELECT DISTINCT in SQL?",
            "Explain how `ls -la` output is structured.","Can you select the best plan for a family of four?",
            "Rédige un e-mail poli pour décaler la réunion.","用三句话总结这篇文章。"])}]
    else:
        doc["query"] = {"filter": {"status": ["open", "pending"], "q": rnd.choice(searches)}, "sort": "-created_at", "limit": 50}
    add("json", json.dumps(doc, ensure_ascii=rnd.random() < .3))

for _ in range(120):
    form = {"name": f"{rnd.choice(first)} {rnd.choice(last)}", "email": misc() if rnd.random() < .2 else "user%d@example.com" % rnd.randint(1,999),
            "comment": rnd.choice(desc + markdown[:6]), "plan": rnd.choice(["free","pro","Select plan"])}
    add("form", urllib.parse.urlencode(form))

for o in out:
    print(json.dumps(o, ensure_ascii=False))
