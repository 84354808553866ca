"""The built-in knowledge of the simulated world: regions, cuisines and dishes.

Every dish carries the attributes the click model reads (served hot or cold,
soup, spicy, breakfast, late-night, sweet).  Those attributes never appear as
columns in the output tables; they are visible only through the text of dish
names, descriptions, introductions and tags.  That is what makes the semantic
part of the click model learnable from text and not from ids.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dish:
    """One dish and the hidden attributes the click model uses."""

    name: str
    description: str
    temp: str  # "hot", "warm" or "cold"
    soup: bool = False
    spicy: float = 0.0  # 0..1
    breakfast: bool = False
    late_night: bool = False
    sweet: bool = False


@dataclass(frozen=True)
class Cuisine:
    """A kind of shop; ``region`` is set for a regional specialty cuisine."""

    name: str
    label: str  # how an introduction names it ("Cantonese", "bubble tea")
    shop_nouns: tuple[str, ...]
    dishes: tuple[Dish, ...]
    region: str | None = None
    open_hours: tuple[int, int] = (10, 22)  # open, close (close < open means past midnight)


@dataclass(frozen=True)
class Region:
    """A city or province with districts, coordinates and a climate."""

    name: str
    lat: float
    lon: float
    districts: tuple[str, ...]
    mean_temp_c: float
    rain_prob: float


REGIONS: tuple[Region, ...] = (
    Region("Guangdong", 23.13, 113.26, ("Tianhe", "Yuexiu", "Haizhu", "Liwan", "Baiyun", "Panyu",
                                         "Futian", "Nanshan", "Chancheng", "Dongguan Centre", "Shunde", "Huadu"),
           31.0, 0.35),
    Region("Sichuan", 30.66, 104.07, ("Jinjiang", "Qingyang", "Wuhou", "Chenghua", "Jinniu", "Gaoxin",
                                       "Shuangliu", "Pixian", "Wenjiang", "Longquan", "Xindu", "Tianfu"),
           26.0, 0.30),
    Region("Beijing", 39.90, 116.40, ("Dongcheng", "Xicheng", "Chaoyang", "Haidian", "Fengtai", "Shijingshan",
                                       "Tongzhou", "Shunyi", "Changping", "Daxing", "Mentougou", "Fangshan"),
           27.0, 0.15),
    Region("Shanghai", 31.23, 121.47, ("Huangpu", "Xuhui", "Changning", "Jingan", "Putuo", "Hongkou",
                                        "Yangpu", "Pudong", "Minhang", "Baoshan", "Jiading", "Songjiang"),
           29.0, 0.30),
    Region("Heilongjiang", 45.80, 126.53, ("Daoli", "Nangang", "Daowai", "Xiangfang", "Pingfang", "Songbei",
                                            "Hulan", "Acheng", "Shuangcheng", "Bin County", "Yilan", "Wuchang"),
           8.0, 0.20),
    Region("Xinjiang", 43.83, 87.62, ("Tianshan", "Saybagh", "Xinshi", "Shuimogou", "Toutunhe", "Dabancheng",
                                       "Midong", "Changji", "Fukang", "Wujiaqu", "Turpan", "Hami"),
           20.0, 0.05),
    Region("Yunnan", 25.04, 102.71, ("Wuhua", "Panlong", "Guandu", "Xishan", "Chenggong", "Dongchuan",
                                      "Jinning", "Anning", "Dali Old Town", "Lijiang", "Yuxi", "Qujing"),
           19.0, 0.40),
    Region("Shaanxi", 34.34, 108.94, ("Beilin", "Lianhu", "Xincheng", "Yanta", "Weiyang", "Baqiao",
                                       "Changan", "Lintong", "Gaoling", "Huyi", "Xianyang", "Baoji"),
           24.0, 0.15),
)

CUISINES: tuple[Cuisine, ...] = (
    # --- regional specialties -------------------------------------------------
    Cuisine("cantonese", "Cantonese", ("Dim Sum House", "Cantonese Kitchen", "Roast House"), (
        Dish("rice noodle roll", "steamed rice sheets rolled around shrimp, a Guangzhou morning classic", "warm", breakfast=True),
        Dish("claypot rice", "rice baked in a clay pot with cured sausage, served sizzling hot", "hot"),
        Dish("Cantonese barbecue pork", "honey glazed char siu roasted over fire", "hot"),
        Dish("seafood claypot congee", "slow cooked rice porridge with seafood, steaming hot", "hot", soup=True, breakfast=True),
        Dish("sweet soup", "chilled mung bean and coconut dessert soup", "cold", sweet=True),
        Dish("stir-fried beef rice noodles", "wok-tossed flat rice noodles with beef", "hot"),
    ), region="Guangdong", open_hours=(7, 22)),
    Cuisine("sichuan", "Sichuan", ("Hot Pot", "Sichuan Kitchen", "Spice House"), (
        Dish("spicy beef hot pot", "numbing Sichuan pepper broth with sliced beef, boiling hot", "hot", soup=True, spicy=1.0, late_night=True),
        Dish("mapo tofu", "silken tofu in a fiery chili bean sauce", "hot", spicy=0.9),
        Dish("dan dan noodles", "noodles with chili oil and minced pork", "warm", spicy=0.8),
        Dish("boiled fish in chili oil", "fish slices poached in a red hot chili broth", "hot", soup=True, spicy=1.0),
        Dish("cold spicy chicken", "chilled chicken dressed with chili oil and sesame", "cold", spicy=0.8),
    ), region="Sichuan", open_hours=(11, 2)),
    Cuisine("beijing", "Beijing", ("Roast Duck", "Old Beijing Kitchen", "Noodle Hall"), (
        Dish("Peking roast duck", "crisp roast duck with pancakes and scallion", "hot"),
        Dish("zhajiang noodles", "noodles with fermented soybean pork sauce", "warm"),
        Dish("mutton hot pot", "copper pot of clear broth with thin mutton slices, warming in winter", "hot", soup=True),
        Dish("soy milk and fried dough sticks", "hot soy milk with crisp youtiao, a Beijing breakfast", "hot", breakfast=True),
        Dish("Beijing yogurt", "chilled old-style yogurt in a clay jar", "cold", sweet=True),
    ), region="Beijing", open_hours=(6, 21)),
    Cuisine("shanghai", "Shanghainese", ("Dumpling House", "Shanghai Kitchen", "Bun Shop"), (
        Dish("soup dumplings", "xiaolongbao filled with hot pork broth", "hot", soup=True),
        Dish("pan-fried pork buns", "shengjian buns with crisp bottoms, a Shanghai breakfast", "hot", breakfast=True),
        Dish("scallion oil noodles", "noodles tossed in fragrant scallion oil", "warm"),
        Dish("red braised pork", "sweet soy braised pork belly", "hot", sweet=True),
        Dish("drunken chicken", "cold chicken marinated in Shaoxing wine", "cold"),
    ), region="Shanghai", open_hours=(6, 21)),
    Cuisine("dongbei", "Northeastern", ("Dongbei Kitchen", "Harbin House", "Dumpling Hall"), (
        Dish("pork and sauerkraut stew", "a big pot of hot stew with glass noodles, for freezing days", "hot", soup=True),
        Dish("sweet and sour crispy pork", "guobaorou, crisp pork in a tangy glaze", "hot", sweet=True),
        Dish("boiled dumplings", "handmade pork and cabbage dumplings", "hot"),
        Dish("Harbin red sausage", "smoked garlic sausage", "warm"),
        Dish("frozen pear", "a thawed frozen pear, icy and sweet", "cold", sweet=True),
    ), region="Heilongjiang", open_hours=(10, 23)),
    Cuisine("xinjiang", "Xinjiang", ("Kebab House", "Silk Road Kitchen", "Naan Shop"), (
        Dish("lamb skewers", "cumin spiced lamb grilled over charcoal, a late night favourite", "hot", spicy=0.5, late_night=True),
        Dish("big plate chicken", "chicken and potato stewed with chili and hand-pulled noodles", "hot", spicy=0.7),
        Dish("hand-pulled noodles", "laghman noodles with lamb and peppers", "hot"),
        Dish("baked naan", "round flatbread from a tandoor oven", "warm", breakfast=True),
        Dish("lamb pilaf", "rice cooked with lamb, carrot and raisins", "hot"),
    ), region="Xinjiang", open_hours=(11, 2)),
    Cuisine("yunnan", "Yunnan", ("Rice Noodle House", "Yunnan Kitchen", "Mushroom House"), (
        Dish("crossing-the-bridge rice noodles", "rice noodles cooked at the table in scalding chicken broth", "hot", soup=True),
        Dish("wild mushroom hot pot", "a pot of seasonal wild mushrooms in hot broth", "hot", soup=True),
        Dish("flower cake", "pastry filled with sweet rose petals", "warm", sweet=True, breakfast=True),
        Dish("Dai style grilled fish", "lemongrass fish grilled with chili", "hot", spicy=0.6),
        Dish("cold rice noodle salad", "chilled rice noodles with lime and chili", "cold", spicy=0.5),
    ), region="Yunnan", open_hours=(8, 22)),
    Cuisine("shaanxi", "Shaanxi", ("Noodle House", "Xi'an Kitchen", "Paomo Hall"), (
        Dish("roujiamo", "chopped braised pork in a crisp flatbread", "warm", breakfast=True),
        Dish("biangbiang noodles", "belt-wide noodles with hot chili oil", "hot", spicy=0.8),
        Dish("lamb paomo soup", "torn flatbread soaked in hot lamb soup", "hot", soup=True),
        Dish("liangpi cold noodles", "cold skin noodles with vinegar and chili, refreshing in summer", "cold", spicy=0.6),
        Dish("persimmon cake", "fried persimmon pastry", "warm", sweet=True),
    ), region="Shaanxi", open_hours=(7, 22)),
    # --- cuisines found everywhere -------------------------------------------
    Cuisine("tea", "bubble tea and cold drinks", ("Tea Bar", "Juice Bar", "Milk Tea"), (
        Dish("iced lemon tea", "black tea with fresh lemon over ice, cold and refreshing", "cold", sweet=True),
        Dish("bubble milk tea", "milk tea with tapioca pearls, served iced", "cold", sweet=True),
        Dish("mango smoothie", "blended frozen mango, icy", "cold", sweet=True),
        Dish("watermelon juice", "fresh pressed chilled watermelon", "cold", sweet=True),
    ), open_hours=(10, 23)),
    Cuisine("dessert", "desserts and ice cream", ("Dessert Shop", "Ice Cream Parlour", "Sweet House"), (
        Dish("ice cream sundae", "vanilla ice cream with chocolate sauce", "cold", sweet=True),
        Dish("mango shaved ice", "a tower of shaved ice with fresh mango", "cold", sweet=True),
        Dish("cheesecake", "baked cheesecake, served chilled", "cold", sweet=True),
        Dish("egg tart", "flaky pastry with warm custard", "warm", sweet=True),
    ), open_hours=(11, 23)),
    Cuisine("breakfast", "breakfast", ("Breakfast Shop", "Morning Kitchen", "Bun and Congee"), (
        Dish("warm congee", "plain rice porridge with pickles, gentle and hot", "hot", soup=True, breakfast=True),
        Dish("steamed pork buns", "fluffy baozi fresh from the steamer", "hot", breakfast=True),
        Dish("egg pancake", "jianbing crepe with egg and crisp cracker", "hot", breakfast=True),
        Dish("hot soy milk", "freshly ground soy milk, served hot", "hot", breakfast=True),
        Dish("tea eggs", "eggs simmered in spiced tea", "warm", breakfast=True),
    ), open_hours=(6, 11)),
    Cuisine("noodle_soup", "noodle soup", ("Beef Noodle", "Noodle Soup House", "Ramen Bar"), (
        Dish("beef noodle soup", "hand-pulled noodles in a rich hot beef broth", "hot", soup=True),
        Dish("spicy sour rice noodles", "suanlafen, hot and sour broth with chili", "hot", soup=True, spicy=0.8),
        Dish("wonton soup", "pork wontons in a clear hot broth", "hot", soup=True, late_night=True),
        Dish("tonkotsu ramen", "pork bone broth ramen, steaming hot", "hot", soup=True, late_night=True),
    ), open_hours=(9, 1)),
    Cuisine("fast_food", "fast food", ("Burger", "Fried Chicken", "Grill Express"), (
        Dish("fried chicken", "crispy fried chicken pieces", "hot", late_night=True),
        Dish("cheeseburger", "beef patty with cheese in a soft bun", "warm"),
        Dish("french fries", "salted potato fries", "hot", late_night=True),
        Dish("cola float", "cola with a scoop of ice cream", "cold", sweet=True),
    ), open_hours=(10, 2)),
    Cuisine("salad", "salads and cold dishes", ("Salad Bar", "Green Bowl", "Poke Bowl"), (
        Dish("chicken caesar salad", "crisp lettuce and cold chicken breast", "cold"),
        Dish("salmon poke bowl", "raw salmon on cool rice", "cold"),
        Dish("cold soba noodles", "chilled buckwheat noodles with dipping sauce", "cold"),
        Dish("fruit cup", "fresh cut seasonal fruit, chilled", "cold", sweet=True),
    ), open_hours=(10, 21)),
    Cuisine("bbq", "late night barbecue", ("Night BBQ", "Skewer House", "Charcoal Grill"), (
        Dish("grilled skewers", "assorted meat skewers from the charcoal grill, open late", "hot", spicy=0.5, late_night=True),
        Dish("grilled oysters", "oysters grilled with garlic", "hot", late_night=True),
        Dish("spicy crayfish", "a basin of crayfish in chili and Sichuan pepper", "hot", spicy=0.9, late_night=True),
        Dish("cold beer", "a bottle of cold lager", "cold", late_night=True),
    ), open_hours=(17, 3)),
    Cuisine("pizza", "pizza", ("Pizza", "Pizzeria", "Pizza Kitchen"), (
        Dish("pepperoni pizza", "thin crust pizza with pepperoni, hot from the oven", "hot"),
        Dish("margherita pizza", "tomato, mozzarella and basil", "hot"),
        Dish("baked chicken wings", "oven baked wings", "hot"),
        Dish("tiramisu", "coffee soaked sponge with mascarpone, chilled", "cold", sweet=True),
    ), open_hours=(11, 23)),
    Cuisine("coffee", "coffee", ("Coffee", "Cafe", "Espresso Bar"), (
        Dish("iced americano", "espresso over ice", "cold"),
        Dish("hot latte", "espresso with steamed milk", "hot", breakfast=True),
        Dish("croissant", "buttery croissant, a light breakfast", "warm", breakfast=True),
        Dish("iced coconut latte", "coconut milk latte over ice", "cold", sweet=True),
    ), open_hours=(7, 20)),
)

WEATHER_CONDITIONS: tuple[str, ...] = ("sunny", "cloudy", "light rain", "heavy rain", "snow")
WET_WEATHER: frozenset[str] = frozenset({"light rain", "heavy rain", "snow"})
GENDERS: tuple[str, ...] = ("female", "male", "unknown")
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-59", "60+")
OCCUPATIONS: tuple[str, ...] = ("student", "office worker", "engineer", "teacher", "nurse",
                                "shop owner", "driver", "retiree", "freelancer")
SHOP_PREFIXES: tuple[str, ...] = ("Golden", "Happy", "Old Wang's", "Lucky", "Red Lantern", "Jade", "Little",
                                  "Grandma's", "Sunrise", "Moonlight", "Bamboo", "Silver Spoon", "Corner",
                                  "Family", "Twin Dragon", "Blue Sky", "Lotus", "Peony", "Harbour", "Riverside")
MARKETING_TAGS: tuple[str, ...] = ("free delivery", "family friendly", "popular with students", "quick delivery",
                                   "generous portions", "good for groups", "healthy choice", "budget friendly")
PRICE_WORDS: dict[int, str] = {1: "budget", 2: "mid-range", 3: "upscale", 4: "premium"}


def region_by_name(name: str) -> Region:
    """Look up a catalog region (raises KeyError naming the region)."""
    for region in REGIONS:
        if region.name == name:
            return region
    raise KeyError(f"unknown region {name!r}")
