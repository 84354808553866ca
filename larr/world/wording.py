"""How the *realistic* world variant words things (``world.variant: realistic``).

The keyword world names each semantic cue with one word ("soup", "cold food", "late night" tags, "served
iced" descriptions). Real shop listings do not: the same meaning comes in many wordings, is mostly implied
by the dishes themselves ("wontons in a clear stock", "mala beef hotpot") and is buried in noise (typos,
missing or one-line descriptions, marketing). This module holds that wording:

* :data:`DISH_WORDING` -- per catalog dish, synonyms of its name and plain descriptions that name
  ingredients and preparation but not the hidden attribute;
* :data:`CUE_PHRASES` -- per hidden attribute, paraphrases a description may carry (with a probability);
* :data:`ATTRIBUTE_TAGS` -- per attribute, synonym tags (never the literal cue word);
* cuisine labels, shop nouns, region nicknames, introduction templates and marketing noise;
* :func:`typo` -- the text noise.

The hidden attributes themselves (:class:`larr.world.catalog.Dish`) are unchanged, so the click model's
semantic part still reads the meaning; only what the text reveals, and how, differs.
:data:`CUE_KEYWORDS` lists the literal cue phrases of the keyword world that no realistic POI text contains.
"""

from __future__ import annotations

import numpy as np

# Literal cue phrases of the keyword world; the realistic world's POI texts never contain them (tested).
CUE_KEYWORDS: tuple[str, ...] = ("hot soup", "cold food", "soup dish", "breakfast", "late night", "late-night",
                                 "local specialty", "served hot", "served cold", "served warm", "served iced")

# dish name -> (name synonyms, plain descriptions: ingredients and preparation, no attribute word)
DISH_WORDING: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # cantonese
    "rice noodle roll": (("rice noodle roll", "cheung fun", "steamed rice roll", "shrimp cheung fun"),
                         ("silky rice sheets wrapped around shrimp, sweet soy on top",
                          "thin rice sheets rolled with prawns or beef")),
    "claypot rice": (("claypot rice", "bo zai fan", "clay pot rice with sausage"),
                     ("rice baked in a clay pot with cured sausage and a crisp crust",
                      "lap cheong and chicken over rice in an earthen pot")),
    "Cantonese barbecue pork": (("char siu", "barbecue pork", "honey roast pork", "char siu rice"),
                                ("honey glazed pork roasted over fire", "sticky red roast pork over rice")),
    "seafood claypot congee": (("seafood congee", "claypot congee", "fish and prawn porridge", "jook"),
                               ("rice cooked down to silk with fish, prawns and ginger",
                                "slow simmered rice with scallops and shrimp")),
    "sweet soup": (("tong sui", "mung bean dessert", "coconut sago", "red bean dessert"),
                   ("mung beans, coconut milk and sago", "red beans with tangerine peel")),
    "stir-fried beef rice noodles": (("beef chow fun", "gon chow ngau ho", "wok-fried beef ho fun"),
                                     ("wide rice noodles tossed with beef, bean sprouts and soy",
                                      "flat noodles charred in a blazing wok with beef")),
    # sichuan
    "spicy beef hot pot": (("mala beef hotpot", "beef hotpot", "Chongqing style hotpot", "numbing beef hot pot"),
                           ("sliced beef cooked at the table in a red tallow stock with peppercorns",
                            "beef, tripe and tofu dipped into a bubbling pot")),
    "mapo tofu": (("mapo tofu", "pockmarked grandma tofu", "mapo doufu"),
                  ("silken tofu and minced beef in chili bean sauce", "tofu with doubanjiang and ground peppercorn")),
    "dan dan noodles": (("dan dan noodles", "dandan mian", "peddler's noodles"),
                        ("noodles with red chili oil, sesame paste and minced pork",
                         "wheat noodles with preserved greens and pork")),
    "boiled fish in chili oil": (("shui zhu yu", "water boiled fish", "chili oil fish"),
                                 ("fish slices poached under a layer of red oil and dried chilies",
                                  "tender fish fillets with bean sprouts and a lot of peppers")),
    "cold spicy chicken": (("saliva chicken", "kou shui ji", "chili oil chicken"),
                           ("poached chicken dressed with red oil, peanuts and sesame",
                            "sliced chicken in a tingling chili dressing")),
    # beijing
    "Peking roast duck": (("Peking duck", "roast duck", "Beijing kao ya"),
                          ("lacquered duck with pancakes, scallion and hoisin",
                           "crisp skinned duck carved at the counter")),
    "zhajiang noodles": (("zhajiang noodles", "fried sauce noodles", "zha jiang mian"),
                         ("noodles with fermented soybean pork sauce and cucumber",
                          "hand-cut noodles under a dark bean sauce")),
    "mutton hot pot": (("mutton hotpot", "shuan yang rou", "copper pot lamb"),
                       ("thin mutton slices swished in a copper pot of clear stock",
                        "lamb, cabbage and tofu cooked in a charcoal pot")),
    "soy milk and fried dough sticks": (("youtiao and doujiang", "fried dough sticks with soy milk",
                                         "doujiang set"),
                                        ("crisp youtiao to dip into fresh soybean milk",
                                         "golden dough sticks and a cup of soybean milk")),
    "Beijing yogurt": (("Beijing yogurt", "old style yogurt", "clay jar yogurt"),
                       ("thick yogurt in a clay jar, sipped through a straw", "set yogurt with a little honey")),
    # shanghai
    "soup dumplings": (("xiaolongbao", "soup dumplings", "XLB", "steamed juicy buns"),
                       ("thin skinned pork dumplings that burst with broth", "pleated dumplings with a meaty juice")),
    "pan-fried pork buns": (("shengjian bao", "pan-fried buns", "sheng jian"),
                            ("pork buns with crisp golden bottoms and sesame", "juicy buns fried in a flat pan")),
    "scallion oil noodles": (("scallion oil noodles", "cong you ban mian", "scallion noodles"),
                             ("thin noodles in fragrant fried scallion oil and soy", "noodles with crisp scallions")),
    "red braised pork": (("hong shao rou", "red braised pork", "braised pork belly"),
                         ("pork belly braised in soy, rock sugar and wine", "glossy pork belly cubes")),
    "drunken chicken": (("drunken chicken", "zui ji", "Shaoxing wine chicken"),
                        ("chicken marinated in Shaoxing wine", "wine soaked chicken slices")),
    # dongbei
    "pork and sauerkraut stew": (("suan cai bai rou", "sauerkraut pork stew", "pickled cabbage stew"),
                                 ("pork belly, pickled cabbage and glass noodles in a big pot",
                                  "sour cabbage stewed with pork and vermicelli")),
    "sweet and sour crispy pork": (("guobaorou", "sweet and sour pork", "crispy pork in glaze"),
                                   ("crisp pork slices in a tangy sugar glaze", "battered pork with vinegar and sugar")),
    "boiled dumplings": (("jiaozi", "pork and cabbage dumplings", "shui jiao"),
                         ("handmade dumplings of pork and cabbage", "plump dumplings with vinegar to dip")),
    "Harbin red sausage": (("Harbin red sausage", "hong chang", "smoked garlic sausage"),
                           ("smoked pork sausage with garlic", "Russian style red sausage")),
    "frozen pear": (("frozen pear", "dong li", "black frost pear"),
                    ("a pear frozen black and thawed to juice", "a Harbin street treat")),
    # xinjiang
    "lamb skewers": (("lamb skewers", "yang rou chuan", "chuanr", "cumin lamb kebab"),
                     ("cumin and chili lamb over charcoal", "fatty lamb cubes grilled on iron skewers")),
    "big plate chicken": (("big plate chicken", "da pan ji", "dapanji"),
                          ("chicken and potatoes stewed with peppers over wide noodles",
                           "a platter of chicken, potato and belt noodles")),
    "hand-pulled noodles": (("laghman", "hand-pulled noodles", "la tiao zi"),
                            ("pulled noodles with lamb, tomato and peppers", "chewy noodles stir-fried with lamb")),
    "baked naan": (("naan", "tandoor naan", "nang"),
                   ("round bread from a tandoor oven with sesame", "flatbread slapped on the oven wall")),
    "lamb pilaf": (("polo", "lamb pilaf", "zhua fan"),
                   ("rice cooked with lamb, carrot and raisins", "pilaf of yellow carrots and mutton")),
    # yunnan
    "crossing-the-bridge rice noodles": (("crossing-the-bridge noodles", "guo qiao mi xian", "bridge noodles"),
                                         ("rice noodles, quail egg and ham slipped into a bowl of chicken stock at "
                                          "the table", "a bowl of chicken stock under a layer of oil, noodles "
                                                        "on the side")),
    "wild mushroom hot pot": (("wild mushroom hotpot", "jun guo", "mushroom pot"),
                              ("seasonal wild fungi cooked in a chicken stock pot", "porcini and matsutake in a pot")),
    "flower cake": (("flower cake", "xian hua bing", "rose pastry"),
                    ("flaky pastry filled with rose petals", "Kunming rose cake")),
    "Dai style grilled fish": (("Dai grilled fish", "lemongrass fish", "pa pa yu"),
                               ("fish stuffed with lemongrass and grilled with chili", "herb crusted grilled tilapia")),
    "cold rice noodle salad": (("liang mi xian", "rice noodle salad", "Yunnan noodle salad"),
                               ("rice noodles with lime, mint and chili", "noodles tossed with peanuts and lime")),
    # shaanxi
    "roujiamo": (("roujiamo", "Chinese hamburger", "rou jia mo"),
                 ("chopped braised pork in a crisp flatbread", "stewed pork stuffed in baiji bread")),
    "biangbiang noodles": (("biangbiang noodles", "belt noodles", "you po mian"),
                           ("belt-wide noodles under sizzling chili oil", "broad noodles with garlic and red pepper")),
    "lamb paomo soup": (("yang rou pao mo", "lamb paomo", "paomo"),
                        ("torn flatbread soaked in lamb stock", "bread crumbs in a bowl of mutton broth")),
    "liangpi cold noodles": (("liangpi", "skin noodles", "Xi'an liang pi"),
                             ("wheat starch noodles with vinegar and chili oil", "slippery noodles with cucumber")),
    "persimmon cake": (("persimmon cake", "huang gui shi zi bing", "persimmon pastry"),
                       ("fried persimmon dough with a sugar filling", "golden persimmon pancakes")),
    # tea
    "iced lemon tea": (("lemon tea", "iced lemon tea", "HK lemon tea"),
                       ("black tea with fresh lemon slices", "strong tea muddled with lemon")),
    "bubble milk tea": (("bubble tea", "boba milk tea", "pearl milk tea"),
                        ("milk tea with chewy tapioca pearls", "brown sugar boba in milk tea")),
    "mango smoothie": (("mango smoothie", "mango slush", "mango blend"),
                       ("blended mango with a little yogurt", "whole mango blitzed with ice")),
    "watermelon juice": (("watermelon juice", "fresh watermelon", "watermelon cooler"),
                         ("fresh pressed watermelon", "watermelon and mint, just squeezed")),
    # dessert
    "ice cream sundae": (("sundae", "ice cream sundae", "chocolate sundae"),
                         ("vanilla scoops with chocolate sauce and nuts", "soft serve with fudge")),
    "mango shaved ice": (("mango bingsu", "mango shaved ice", "mango snow ice"),
                         ("a tower of fluffy ice flakes with fresh mango", "milk snow with mango and condensed milk")),
    "cheesecake": (("cheesecake", "New York cheesecake", "basque cheesecake"),
                   ("baked cream cheese cake on a biscuit base", "burnt top cheesecake")),
    "egg tart": (("egg tart", "dan tat", "Portuguese tart"),
                 ("flaky pastry with custard", "custard tarts, two per box")),
    # breakfast
    "warm congee": (("congee", "rice porridge", "plain congee with pickles", "bai zhou"),
                    ("plain rice porridge with pickled vegetables", "rice simmered until creamy")),
    "steamed pork buns": (("baozi", "pork buns", "steamed buns"),
                          ("fluffy buns with a pork filling", "bamboo basket of pork buns")),
    "egg pancake": (("jianbing", "egg crepe", "jianbing guozi"),
                    ("a crepe with egg, scallion and a crisp cracker", "street crepe folded around a fried wafer")),
    "hot soy milk": (("soy milk", "doujiang", "fresh soybean milk"),
                     ("freshly ground soybean milk", "soybean milk, sugar on request")),
    "tea eggs": (("tea eggs", "cha ye dan", "marbled eggs"),
                 ("eggs simmered in soy and spiced tea", "marbled eggs from the pot at the counter")),
    # noodle soup
    "beef noodle soup": (("beef noodles", "Lanzhou lamian", "niu rou mian", "braised beef noodles"),
                         ("hand-pulled noodles with beef slices, radish and coriander in a rich stock",
                          "noodles and braised beef shank in a deep bowl")),
    "spicy sour rice noodles": (("suanlafen", "hot and sour noodles", "sour chili rice noodles"),
                                ("sweet potato noodles in a vinegar and chili stock", "glass noodles with peanuts")),
    "wonton soup": (("wonton soup", "wontons", "huntun", "shrimp wontons"),
                    ("pork and shrimp wontons in a clear stock", "silky wontons with seaweed and dried shrimp")),
    "tonkotsu ramen": (("tonkotsu ramen", "ramen", "pork bone ramen"),
                       ("ramen in a milky pork bone broth with chashu", "noodles, egg and pork in a rich stock")),
    # fast food
    "fried chicken": (("fried chicken", "crispy chicken bucket", "Korean fried chicken"),
                      ("battered chicken pieces", "double fried wings and drumsticks")),
    "cheeseburger": (("cheeseburger", "double cheeseburger", "classic burger"),
                     ("beef patty with cheese in a soft bun", "two patties, pickles and cheese")),
    "french fries": (("fries", "french fries", "chips"), ("salted potato fries", "crinkle cut potato fries")),
    "cola float": (("cola float", "coke float", "ice cream soda"), ("cola with a scoop of vanilla", "soda and ice cream")),
    # salad
    "chicken caesar salad": (("caesar salad", "chicken caesar", "grilled chicken salad"),
                             ("romaine, chicken breast, croutons and parmesan", "lettuce, chicken and dressing")),
    "salmon poke bowl": (("salmon poke", "poke bowl", "salmon rice bowl"),
                         ("raw salmon cubes on sushi rice with avocado", "salmon, edamame and seaweed on rice")),
    "cold soba noodles": (("zaru soba", "soba", "buckwheat noodles"),
                          ("buckwheat noodles with a dipping sauce", "soba on a bamboo mat with wasabi")),
    "fruit cup": (("fruit cup", "mixed fruit", "fruit box"), ("cut seasonal fruit", "melon, grapes and kiwi")),
    # bbq
    "grilled skewers": (("skewers", "chuanr platter", "mixed kebabs"),
                        ("assorted meat on sticks from the charcoal grill", "beef, lamb and chicken hearts on sticks")),
    "grilled oysters": (("grilled oysters", "garlic oysters", "charcoal oysters"),
                        ("oysters grilled with garlic and vermicelli", "half shell oysters with garlic")),
    "spicy crayfish": (("crayfish", "mala crayfish", "xiao long xia"),
                       ("a basin of crawfish in chili and peppercorn", "crayfish tossed with garlic and chilies")),
    "cold beer": (("beer", "draft beer", "lager", "Tsingtao"), ("a bottle of lager", "a pint of draft")),
    # pizza
    "pepperoni pizza": (("pepperoni pizza", "pepperoni pie"), ("thin crust pizza with pepperoni", "pepperoni and mozzarella")),
    "margherita pizza": (("margherita", "margherita pizza"), ("tomato, mozzarella and basil", "classic tomato and cheese")),
    "baked chicken wings": (("chicken wings", "oven wings", "honey wings"), ("oven baked wings", "wings with a honey glaze")),
    "tiramisu": (("tiramisu", "coffee mascarpone cake"), ("coffee soaked sponge with mascarpone", "layers of cocoa and cream")),
    # coffee
    "iced americano": (("americano", "iced americano", "long black"), ("espresso and water", "a double shot topped up")),
    "hot latte": (("latte", "cafe latte", "flat white"), ("espresso with steamed milk", "double shot with silky milk")),
    "croissant": (("croissant", "butter croissant"), ("buttery layered pastry", "laminated dough baked golden")),
    "iced coconut latte": (("coconut latte", "coco latte", "coconut coffee"),
                           ("coconut milk and espresso", "espresso over coconut milk")),
}

# hidden attribute -> paraphrases a description may carry
CUE_PHRASES: dict[str, tuple[str, ...]] = {
    "soup": ("in a deep bowl of stock", "ladled over with bone stock", "simmered for hours", "slurp it from the bowl",
             "a brothy bowl", "swimming in a clear stock", "warms you to the bones"),
    "hot": ("straight from the wok", "sizzling", "piping", "steaming", "fresh off the fire", "bubbling at your door"),
    "cold": ("over crushed ice", "straight from the fridge", "frosty", "chilled", "cool and crisp", "kept on ice",
             "a summer cooler"),
    "breakfast": ("an early-morning staple", "what commuters grab on the way to work", "ready from 6 am",
                  "a dawn classic", "start-the-day fare", "best before ten"),
    "late_night": ("a midnight favourite", "for after-hours cravings", "great with a beer after midnight",
                   "a night-owl classic", "for when the bars close"),
    "spicy": ("fiery", "numbing peppercorn heat", "loaded with red chilies", "mala", "tongue-tingling"),
    "mild_spicy": ("a kick of chili", "mildly peppery", "a little heat"),
    "sweet": ("sugary", "honeyed", "dessert-like", "syrupy", "candied"),
}

# hidden attribute -> tags a POI may carry (synonyms; never the keyword world's literal tag)
ATTRIBUTE_TAGS: dict[str, tuple[str, ...]] = {
    "cold": ("chilled", "iced treats", "summer cooler", "frozen"),
    "soup": ("broths", "stews", "warming bowls"),
    "spicy": ("mala", "chili", "fiery"),
    "breakfast": ("morning", "early opening", "commuter pick"),
    "late_night": ("open late", "midnight eats", "night owl"),
    "sweet": ("dessert", "sugar rush", "treats"),
    "local": ("hometown flavour", "regional classic", "authentic"),
}

MARKETING_TAGS: tuple[str, ...] = ("free delivery", "family friendly", "popular with students", "quick delivery",
                                   "generous portions", "good for groups", "healthy choice", "budget friendly",
                                   "best seller", "top rated", "hot deals", "new", "cool prices", "limited offer",
                                   "members save", "chef's pick", "eco packaging", "5 stars", "must try")
MARKETING_LINES: tuple[str, ...] = ("Order now!", "New customers get 10% off.", "Top 10 in the area.",
                                    "Free drink over 30 yuan.", "Fast delivery, hot and fresh!", "Hot deals every Friday.",
                                    "Cool prices all summer.", "Follow us for coupons.", "5 stars on every platform.",
                                    "Since 1998.", "Voted best in town.", "Double points this week.")

# cuisine name -> labels a listing may use
CUISINE_LABELS: dict[str, tuple[str, ...]] = {
    "cantonese": ("Cantonese", "Hong Kong style", "Guangzhou food", "dim sum"),
    "sichuan": ("Sichuan", "Chuan cuisine", "Chengdu food", "mala"),
    "beijing": ("Beijing", "Jing cuisine", "old Peking", "northern Chinese"),
    "shanghai": ("Shanghainese", "Hu cuisine", "Jiangnan", "Shanghai food"),
    "dongbei": ("Northeastern", "Dongbei", "Harbin food", "northeast home style"),
    "xinjiang": ("Xinjiang", "Uyghur", "Silk Road food", "halal grill"),
    "yunnan": ("Yunnan", "Dian cuisine", "Kunming food", "southwest mountain food"),
    "shaanxi": ("Shaanxi", "Xi'an food", "Qin cuisine", "northwest noodles"),
    "tea": ("milk tea", "drinks", "juice and tea", "beverages"),
    "dessert": ("desserts", "patisserie", "treats", "bakery"),
    "breakfast": ("morning food", "buns and congee", "Chinese brunch", "street snacks"),
    "noodle_soup": ("noodles", "noodle bar", "ramen and noodles", "mian guan"),
    "fast_food": ("fast food", "burgers", "fried chicken", "American"),
    "salad": ("salads", "healthy bowls", "poke", "light meals"),
    "bbq": ("barbecue", "skewers", "grill", "shaokao"),
    "pizza": ("pizza", "Italian", "pizzeria", "western"),
    "coffee": ("coffee", "cafe", "bakery cafe", "espresso"),
}

# cuisine name -> shop nouns (no cue word: no "Breakfast Shop", "Night BBQ", "Ice Cream", "Hot Pot")
SHOP_NOUNS: dict[str, tuple[str, ...]] = {
    "cantonese": ("Dim Sum House", "Cantonese Kitchen", "Roast House", "Cha Chaan Teng"),
    "sichuan": ("Sichuan Kitchen", "Spice House", "Mala Pot", "Chengdu Kitchen"),
    "beijing": ("Roast Duck", "Old Beijing Kitchen", "Hutong Kitchen"),
    "shanghai": ("Dumpling House", "Shanghai Kitchen", "Bun Shop"),
    "dongbei": ("Dongbei Kitchen", "Harbin House", "Dumpling Hall"),
    "xinjiang": ("Kebab House", "Silk Road Kitchen", "Naan Shop"),
    "yunnan": ("Mixian House", "Yunnan Kitchen", "Mushroom House"),
    "shaanxi": ("Noodle House", "Xi'an Kitchen", "Paomo Hall"),
    "tea": ("Tea Bar", "Juice Bar", "Milk Tea", "Boba"),
    "dessert": ("Dessert Shop", "Patisserie", "Sweet House", "Gelato"),
    "breakfast": ("Early Bird", "Bun and Congee", "Baozi Stand", "Jianbing Cart"),
    "noodle_soup": ("Beef Noodle", "Lamian House", "Ramen Bar", "Wonton King"),
    "fast_food": ("Burger", "Fried Chicken", "Grill Express"),
    "salad": ("Salad Bar", "Green Bowl", "Poke Bowl"),
    "bbq": ("Skewer House", "Charcoal Grill", "Shaokao Street", "Owl Grill"),
    "pizza": ("Pizza", "Pizzeria", "Pizza Kitchen"),
    "coffee": ("Coffee", "Cafe", "Espresso Bar"),
}
GENERIC_NOUNS: tuple[str, ...] = ("Eatery", "Kitchen", "Canteen", "Food Hall", "Diner", "Bistro", "Table",
                                  "Corner Shop", "Food Studio", "Garden")

# region -> nicknames (cities) the texts may use instead of the region's name
REGION_NICKNAMES: dict[str, tuple[str, ...]] = {
    "Guangdong": ("Guangzhou", "Canton", "Lingnan"),
    "Sichuan": ("Chengdu", "Shu", "Bashu"),
    "Beijing": ("Peking", "the capital", "Jing"),
    "Shanghai": ("Hu", "the Bund city", "Jiangnan"),
    "Heilongjiang": ("Harbin", "the ice city", "Dongbei"),
    "Xinjiang": ("Urumqi", "Kashgar", "the Silk Road"),
    "Yunnan": ("Kunming", "the spring city", "Dali"),
    "Shaanxi": ("Xi'an", "Chang'an", "Qin"),
}

INTRO_TEMPLATES: tuple[str, ...] = (
    "{name} - {label} in {district}. Try the {d1}!",
    "Family-run {price} spot in {district}, {region}: {d1}, {d2} and more.",
    "{d1} and {d2}, made fresh every day.",
    "Your neighbourhood {label} place. {mkt}",
    "Since {year}, {name} has served {d1} to {district}.",
    "Best {label} around {district}!! {d1}, {d2}.",
    "{label} | {d1} | {d2} | {mkt}",
    "We cook {d1} the way we like to eat it.",
)
SHORT_INTROS: tuple[str, ...] = ("", "{name}.", "{mkt}", "{mkt} {mkt2}", "Welcome!")
LOCAL_LINES: tuple[str, ...] = ("Recipes from our hometown.", "Cooked the way it is at home in {nick}.",
                                "Old family recipes from {nick}.", "A bite of {nick}.", "Just like grandma made it.")


def typo(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each word longer than three letters gets, with probability ``rate``, one typo: two letters swapped, one
    dropped or one doubled."""
    if rate <= 0 or not text:
        return text
    words = text.split(" ")
    hits = rng.random(len(words)) < rate
    kinds = rng.integers(0, 3, len(words))
    spots = rng.random(len(words))
    for i in np.flatnonzero(hits):
        w = words[i]
        if len(w) <= 3 or not w.isalpha():
            continue
        j = int(spots[i] * (len(w) - 1))
        if kinds[i] == 0:
            w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        elif kinds[i] == 1:
            w = w[:j] + w[j + 1:]
        else:
            w = w[:j] + w[j] + w[j:]
        words[i] = w
    return " ".join(words)


def pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(0, len(options)))]
