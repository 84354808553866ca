"""The built-in knowledge of the simulated app-recommendation world (:mod:`larr.world.app_usage`).

The click model of that world reads hidden app attributes (works offline, focus tool, relaxing
entertainment, morning routine, outdoor, cosy indoor, data-hungry, local to a city).  None of them is
ever a column: they reach the output only through the words of titles, descriptions and tags.  To make
the mapping from text to attribute a real language problem and not a keyword lookup, every attribute
has many paraphrases -- some say it plainly ("works without a connection"), some only imply it ("listen
on the plane") -- and the texts also carry filler and a few decoy sentences whose words look related
but mean nothing for the click model.

Store categories are deliberately coarse and mixed: every category holds apps with different hidden
attributes, so the category column alone cannot explain the context effects.
"""

from __future__ import annotations

from dataclasses import dataclass

# Hidden attributes, in the column order of the attribute matrix the click model reads.
ATTRIBUTES: tuple[str, ...] = ("offline", "focus", "relax", "morning", "outdoor", "indoor", "data_hungry")
A_OFFLINE, A_FOCUS, A_RELAX, A_MORNING, A_OUTDOOR, A_INDOOR, A_HUNGRY = range(len(ATTRIBUTES))

PLACES: tuple[str, ...] = ("home", "work", "other")
CONNECTIVITY: tuple[str, ...] = ("wifi", "cellular", "offline")
WEATHER: tuple[str, ...] = ("sunny", "cloudy", "rainy", "snowy")
DEVICES: tuple[str, ...] = ("android", "ios")
AGE_GROUPS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55+")
AGE_WEIGHTS: tuple[float, ...] = (0.22, 0.30, 0.22, 0.15, 0.11)


@dataclass(frozen=True)
class City:
    """A home or destination city; its landmarks and transit let a text say "local" without the name."""

    name: str
    country: str
    weight: float  # share of users living there
    transit: str
    landmarks: tuple[str, ...]
    areas: tuple[str, ...]
    climate: tuple[float, float, float, float]  # summer odds of sunny, cloudy, rainy, snowy
    winter_snow: float  # snowy odds from December to March


CITIES: tuple[City, ...] = (
    City("New York", "United States", 0.24, "subway", ("Central Park", "Times Square", "the Brooklyn Bridge"),
         ("Brooklyn", "Harlem", "SoHo"), (0.50, 0.28, 0.21, 0.01), 0.12),
    City("Chicago", "United States", 0.14, "L trains", ("Millennium Park", "Navy Pier", "Wrigley Field"),
         ("Wicker Park", "the Loop", "Lincoln Park"), (0.50, 0.27, 0.22, 0.01), 0.22),
    City("London", "United Kingdom", 0.22, "Tube", ("the South Bank", "Camden Market", "Tower Bridge"),
         ("Shoreditch", "Brixton", "Greenwich"), (0.30, 0.38, 0.31, 0.01), 0.05),
    City("Edinburgh", "United Kingdom", 0.08, "trams", ("the Royal Mile", "Arthur's Seat", "the Castle Rock"),
         ("Leith", "the Old Town", "Stockbridge"), (0.24, 0.38, 0.36, 0.02), 0.12),
    City("Tokyo", "Japan", 0.22, "Yamanote line", ("Shibuya Crossing", "Senso-ji", "Tokyo Tower"),
         ("Shinjuku", "Asakusa", "Ginza"), (0.38, 0.30, 0.31, 0.01), 0.06),
    City("Osaka", "Japan", 0.10, "Midosuji line", ("Dotonbori", "Osaka Castle", "Kuromon Market"),
         ("Namba", "Umeda", "Tennoji"), (0.42, 0.28, 0.29, 0.01), 0.04),
)

IOS_SHARE: dict[str, float] = {"United States": 0.55, "United Kingdom": 0.50, "Japan": 0.66}


@dataclass(frozen=True)
class Category:
    """A coarse store category: attribute odds, neutral base sentences and title words."""

    name: str
    nouns: tuple[str, ...]  # what the app holds, fills the {noun} slot of attribute phrases
    attr_prob: tuple[float, float, float, float, float, float, float]  # odds of each of ATTRIBUTES
    local_prob: float  # odds of being local to one city
    base: tuple[str, ...]  # what the app does, saying nothing about hidden attributes
    title_nouns: tuple[str, ...]
    size_mb: tuple[float, float]  # log-normal median and sigma of the download size
    age_affinity: tuple[float, float, float, float, float]  # category taste shift per age group


CATEGORIES: tuple[Category, ...] = (
    Category("Productivity", ("notes", "tasks", "documents"), (0.40, 0.75, 0.04, 0.30, 0.04, 0.04, 0.05), 0.0,
             ("A simple app for notes, lists and documents.", "Your tasks, calendars and files together.",
              "Write, edit and share documents from your phone.",
              "Scan receipts, sign PDFs and keep them tidy.",
              "Keep every idea, checklist and reminder in one place."),
             ("Notes", "Tasks", "Docs", "Planner", "Desk", "Board", "Lists", "Memo"), (45, 0.5),
             (0.0, 0.2, 0.2, 0.0, -0.3)),
    Category("Music & Audio", ("episodes", "playlists", "albums"), (0.40, 0.18, 0.45, 0.25, 0.25, 0.12, 0.18),
             0.05,
             ("Millions of songs, podcasts and audiobooks.", "A podcast player with smart playlists.",
              "Discover new artists every week.", "Radio stations from around the world in one app.",
              "Lyrics, charts and concert news for every fan."),
             ("Beats", "Tunes", "Radio", "Podcasts", "Sound", "Waves", "Music", "Audio"), (80, 0.5),
             (0.4, 0.2, 0.0, -0.1, -0.3)),
    Category("Video", ("shows", "videos", "films"), (0.25, 0.04, 0.60, 0.05, 0.02, 0.35, 0.70), 0.02,
             ("Movies, series and documentaries for every taste.", "Short clips from creators you love.",
              "A video player that handles every format.", "Catch up on your favourite shows.",
              "Anime, sports and cooking shows in one catalogue."),
             ("TV", "Cinema", "Clips", "Flix", "Screen", "Reels", "Video", "Shows"), (120, 0.5),
             (0.3, 0.2, 0.0, -0.1, -0.2)),
    Category("Games", ("levels", "puzzles", "quests"), (0.50, 0.04, 0.55, 0.10, 0.10, 0.35, 0.30), 0.0,
             ("A colourful puzzle game with hundreds of levels.",
              "Match tiles, solve riddles and beat your score.",
              "Build your own kingdom and defend it.", "A word game that gets harder as you go.",
              "Classic card and board games in one place."),
             ("Quest", "Tiles", "Saga", "Puzzle", "Kingdom", "Blocks", "Words", "Legends"), (300, 0.6),
             (0.5, 0.3, 0.0, -0.3, -0.5)),
    Category("News", ("stories", "articles", "briefings"), (0.25, 0.15, 0.08, 0.60, 0.02, 0.05, 0.20), 0.25,
             ("Headlines from trusted sources.", "The stories that matter, picked by editors.",
              "Breaking news, analysis and opinion.", "Personalised news on the topics you follow.",
              "Politics, business and sport from reporters on the ground."),
             ("News", "Times", "Daily", "Post", "Herald", "Wire", "Digest", "Journal"), (35, 0.4),
             (-0.5, -0.1, 0.1, 0.3, 0.5)),
    Category("Health & Fitness", ("workouts", "sessions", "routines"),
             (0.25, 0.10, 0.30, 0.40, 0.45, 0.35, 0.10), 0.03,
             ("Track steps, sleep and heart rate.", "Guided workouts for every level.",
              "Log meals and water intake.", "Yoga, stretching and breathing exercises.",
              "Set goals and watch your progress week by week."),
             ("Fit", "Coach", "Health", "Pulse", "Yoga", "Steps", "Body", "Moves"), (70, 0.5),
             (0.1, 0.3, 0.1, 0.0, -0.1)),
    Category("Travel & Local", ("maps", "guides", "routes"), (0.40, 0.04, 0.05, 0.05, 0.50, 0.05, 0.10), 0.60,
             ("Plan trips, book hotels and find your way.", "Maps, directions and places to eat.",
              "Compare flights and train tickets.", "Reviews of restaurants and sights.",
              "Timetables, tickets and walking directions."),
             ("Maps", "Guide", "Go", "Trips", "Explorer", "Transit", "Compass", "Atlas"), (90, 0.5),
             (0.0, 0.2, 0.1, 0.1, 0.1)),
    Category("Weather", ("forecasts", "radar maps", "alerts"), (0.10, 0.04, 0.05, 0.45, 0.45, 0.20, 0.06),
             0.10,
             ("Accurate hourly and ten-day forecasts.", "Radar, temperature and wind at a glance.",
              "Weather alerts for where you are.", "Forecasts with beautiful animated backgrounds.",
              "Humidity, pollen and UV index for the week ahead."),
             ("Weather", "Sky", "Forecast", "Radar", "Clouds", "Climate", "Storm", "Breeze"), (30, 0.4),
             (-0.3, -0.1, 0.0, 0.2, 0.4)),
)

# Paraphrases per hidden attribute.  "{noun}" is filled with a category noun.  Some lines say it
# plainly, some only imply it; no line names the attribute the way the code does.
ATTRIBUTE_PHRASES: dict[str, tuple[str, ...]] = {
    "offline": (
        "Works without a connection.",
        "Download {noun} and enjoy them later, anywhere.",
        "No signal needed.",
        "Listen on the plane, in the subway tunnel or at a cabin in the woods.",
        "Everything is stored right on your phone.",
        "Save {noun} ahead of time and open them with zero bars.",
        "Airplane mode? No problem.",
        "Fully usable without internet access.",
        "No data plan required once it is installed.",
        "Your {noun} travel with you, even underground.",
        "Sync once, then take it completely off the grid.",
        "Keep going on long flights and remote hikes where reception dies.",
    ),
    "focus": (
        "Built to help you concentrate on deep work.",
        "Block distractions and get more done.",
        "Organise your {noun}, meetings and deadlines in one place.",
        "A quiet workspace for getting things done.",
        "Plan your sprint, track your to-dos and hit every deadline.",
        "Made for busy professionals.",
        "Pomodoro timers keep you on track during office hours.",
        "Turn scattered ideas into clear plans.",
        "Beat procrastination one task at a time.",
        "Review {noun} with your team and sign them off together.",
        "Stay productive between meetings.",
    ),
    "relax": (
        "Unwind after a long day.",
        "The perfect way to wind down on the couch.",
        "Sit back, relax and let the {noun} flow.",
        "Easy-going entertainment for lazy evenings.",
        "Binge-worthy {noun} for your night in.",
        "Low-stress fun to end your day.",
        "Kick back with something light and soothing.",
        "Ideal for a quiet night at home.",
        "Curl up and lose yourself for hours.",
        "A soothing escape from everyday stress.",
        "Great company for a weekend in your pyjamas.",
    ),
    "morning": (
        "Start your day the right way.",
        "The perfect companion to your first coffee.",
        "A five-minute briefing before you head out the door.",
        "Wake up to fresh {noun} every day at seven.",
        "Build a healthy sunrise routine.",
        "Catch up on what happened overnight while you have breakfast.",
        "Rise and shine with a gentle daily kickoff.",
        "Made for early birds.",
        "Fresh {noun} land before breakfast, every single day.",
        "Get set for the day ahead before the alarm stops ringing.",
    ),
    "outdoor": (
        "Made for runners, hikers and cyclists.",
        "Track every trail, park and bike path.",
        "Get outside and explore on foot.",
        "GPS tracking for your next adventure in the open air.",
        "Perfect for days at the beach or up in the mountains.",
        "Plan picnics, hikes and rooftop evenings.",
        "Discover parks, viewpoints and open-air markets nearby.",
        "Your sidekick on long bike rides.",
        "Find the best spots to catch the sunset.",
        "Lace up your shoes: the {noun} come with you around the lake.",
    ),
    "indoor": (
        "Perfect for staying in when it pours outside.",
        "Stay warm and entertained under a blanket.",
        "Great for rainy afternoons indoors.",
        "No equipment and no need to step outside.",
        "Make the most of grey days at home.",
        "A cosy pick for stormy weekends.",
        "Hot tea, a window seat and your favourite {noun}.",
        "No umbrella needed: everything happens in your living room.",
        "Ideal when snow keeps you inside.",
        "Fun for the whole family on days you cannot go out.",
    ),
    "data_hungry": (
        "Stream in stunning 4K HDR.",
        "Watch live matches in full HD.",
        "Crystal-clear video streaming, always live.",
        "Endless high-definition {noun}, streamed instantly.",
        "Live broadcasts and video calls in the highest quality.",
        "Best enjoyed on a fast connection.",
        "Auto-plays high-bitrate video from the first tap.",
        "Cloud-powered: everything streams from our servers in real time.",
        "Thousands of live channels at maximum resolution.",
        "Real-time multiplayer battles with players worldwide.",
        "Ultra HD trailers and clips play as you scroll.",
    ),
}

# Local-to-a-city phrasings; the indirect ones name only a landmark, an area or the transit line.
LOCAL_PHRASES: tuple[str, ...] = (
    "The insider's guide to {city}.",
    "Ride the {transit} like a local.",
    "Find hidden gems around {landmark}.",
    "Everything happening in {area} tonight.",
    "Tickets for {landmark} and the best of {city}.",
    "Real-time departures for the {transit}.",
    "Explore {area} and {area2} like you grew up there.",
    "From {landmark} to {area}: every corner, reviewed by neighbours.",
    "Made in {city}, for people in {city}.",
    "Street food, gigs and pop-ups near {landmark}.",
)

ATTRIBUTE_TAGS: dict[str, tuple[str, ...]] = {
    "offline": ("offline", "no internet", "downloads", "airplane mode"),
    "focus": ("productivity", "focus", "work", "to-do"),
    "relax": ("relaxing", "chill", "cosy", "binge"),
    "morning": ("morning", "daily briefing", "routine", "wake up"),
    "outdoor": ("outdoors", "hiking", "running", "cycling"),
    "indoor": ("stay home", "rainy day", "home workout", "indoor"),
    "data_hungry": ("4K", "live streaming", "HD video", "online multiplayer"),
}
LOCAL_TAGS: tuple[str, ...] = ("{city}", "city guide", "local", "{transit}")
GENERIC_TAGS: tuple[str, ...] = ("free", "popular", "editor's choice", "ad-free", "family", "top rated",
                                 "trending", "award winner")

ATTRIBUTE_TITLE_WORDS: dict[str, tuple[str, ...]] = {
    "offline": ("Offline", "Anywhere", "Unplugged"),
    "focus": ("Focus", "Deep Work", "Flow"),
    "relax": ("Chill", "Calm", "Cosy", "Lazy"),
    "morning": ("Morning", "Sunrise", "Daybreak", "Early Bird"),
    "outdoor": ("Trail", "Outdoor", "Trek", "Ride"),
    "indoor": ("Home", "Rainy Day", "Indoor"),
    "data_hungry": ("Live", "HD", "4K", "Stream"),
}
TITLE_ADJECTIVES: tuple[str, ...] = ("Bright", "Nova", "Swift", "Pixel", "Blue", "Simple", "Smart", "Happy",
                                     "Golden", "Little", "Super", "Zen", "Prime", "Mega", "Neat", "Orbit",
                                     "Echo", "Lucky", "Clever", "Red")
TITLE_SUFFIXES: tuple[str, ...] = ("Pro", "Plus", "Go", "X", "Max", "One", "Studio", "Hub")

DEVELOPER_FIRST: tuple[str, ...] = ("Blue", "Nimbus", "Orchard", "Pixel", "North", "Bright", "Atlas", "Kite",
                                    "Maple", "Quartz", "Cobalt", "Lumen", "Harbor", "Echo", "Cedar", "Vertex")
DEVELOPER_SECOND: tuple[str, ...] = ("Fox", "Owl", "Peak", "River", "Stone", "Wave", "Leaf", "Star")
DEVELOPER_KIND: tuple[str, ...] = ("Labs", "Studio", "Software", "Apps", "Interactive", "Media", "Games",
                                   "Digital", "Inc.", "Ltd.")

# Filler: true of many apps, unrelated to any attribute.  The last few are decoys -- they use words
# that look like attributes ("home", "morning", "rainy", "offline") but say nothing about the app's use.
FILLER_SENTENCES: tuple[str, ...] = (
    "Loved by millions of users worldwide.",
    "Regular updates bring new features every month.",
    "Dark mode included.",
    "Sign in with one tap.",
    "Available in twenty languages.",
    "Go premium to remove ads.",
    "Winner of several design awards.",
    "Your privacy comes first: we never sell your data.",
    "Free to download with optional in-app purchases.",
    "Syncs across all your devices.",
    "Our small team works from home all over the world.",
    "Named app of the day by a national morning show.",
    "Our founders sketched the first version on a rainy afternoon.",
    "Meet the team at our offline community meetups.",
)
