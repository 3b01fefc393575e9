"""Deterministic demo data: a bilingual catalog, customers, two years of orders and a few open tickets.

The shop is a fictional consumer-electronics and lifestyle store selling its own brands (Lumo audio,
Kefu accessories and computing, Nestia smart home, Pulsa wearables, Cuisino kitchen, Trailo outdoor).
The catalog is written out by hand below; customers, orders and tickets are generated from a
``random.Random(seed_value)`` and dated relative to ``REFERENCE_DATE``, so every run produces the
same rows, value for value.

Two customers are fixed for demos and tests: ``DEMO_CUSTOMER_ZH`` (王芳, a Chinese-speaking VIP)
and ``DEMO_CUSTOMER_EN`` (Emma Clark, an English-speaking gold member). Each has hand-written
orders covering the interesting states: shipped with tracking, delivered, awaiting a return, and so on.

Example:
    >>> from core.db import make_engine
    >>> summary = seed(make_engine("sqlite://"))
    >>> summary.created
    True

"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from core.db import (
    Base,
    ConversationLogRow,
    CustomerRow,
    OrderItemRow,
    OrderRow,
    ProductRow,
    TicketRow,
    TurnAuditRow,
)
from core.history import HistoryCustomer, service_history
from core.types import Lang, OrderStatus, TicketKind, TicketStatus, Tier

__all__ = ["DEMO_CUSTOMER_EN", "DEMO_CUSTOMER_ZH", "REFERENCE_DATE", "SeedSummary", "seed"]

REFERENCE_DATE = datetime(2026, 11, 1, 12, 0)
"""'Now' for the demo data: every date is relative to it (ten days before Singles' Day)."""

DEMO_CUSTOMER_ZH = "C0001"
"""王芳, a Chinese-speaking VIP with shipped, delivered and return-requested orders."""

DEMO_CUSTOMER_EN = "C0002"
"""Emma Clark, an English-speaking gold member with shipped, delivered and refunded orders."""

_CUSTOMER_COUNT = 220
_RANDOM_ORDER_STATUSES: tuple[tuple[OrderStatus, int], ...] = (
    # How many generated orders end in each state (the demo customers' orders come on top).
    (OrderStatus.PENDING_PAYMENT, 45),
    (OrderStatus.PAID, 60),
    (OrderStatus.SHIPPED, 90),
    (OrderStatus.DELIVERED, 820),
    (OrderStatus.CANCELLED, 75),
    (OrderStatus.RETURN_REQUESTED, 35),
    (OrderStatus.RETURNED, 40),
    (OrderStatus.REFUNDED, 35),
)
_STATUS_AGE_DAYS: dict[OrderStatus, tuple[float, float]] = {
    # How old (min, max days before REFERENCE_DATE) an order in each state may be: recent orders are
    # still pending, paid or on their way; old ones are delivered, returned, refunded or cancelled.
    OrderStatus.PENDING_PAYMENT: (0.0, 2.0),
    OrderStatus.PAID: (0.2, 4.0),
    OrderStatus.SHIPPED: (0.5, 4.5),
    OrderStatus.DELIVERED: (6.0, 730.0),
    OrderStatus.CANCELLED: (0.5, 730.0),
    OrderStatus.RETURN_REQUESTED: (8.0, 40.0),
    OrderStatus.RETURNED: (20.0, 730.0),
    OrderStatus.REFUNDED: (15.0, 730.0),
}
_UNSHIPPED = frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.CANCELLED})
_TIER_ORDER_WEIGHT = {Tier.STANDARD: 1.0, Tier.SILVER: 1.5, Tier.GOLD: 2.5, Tier.VIP: 4.0}


@dataclass(frozen=True)
class SeedSummary:
    """What ``seed`` found or wrote.

    Attributes:
        products: Catalog entries in the database.
        customers: Customers in the database.
        orders: Orders in the database.
        order_items: Order lines in the database.
        tickets: Tickets in the database.
        conversations: Conversations in the service log (``conversation_log``), the demo history included.
        created: True when this call wrote the data; False when it already existed and nothing was done.

    """

    products: int
    customers: int
    orders: int
    order_items: int
    tickets: int
    conversations: int
    created: bool


# --------------------------------------------------------------------------------------------- catalog

_SCENARIOS: dict[str, str] = {
    "running": "跑步",
    "commuting": "通勤",
    "travel": "旅行",
    "home office": "居家办公",
    "gift": "送礼",
    "fitness": "健身",
    "music": "音乐",
    "study": "学习",
    "parties": "聚会",
    "camping": "露营",
    "home cinema": "家庭影院",
    "sleep": "睡眠",
    "swimming": "游泳",
    "cycling": "骑行",
    "business trips": "商务出差",
    "vlogging": "Vlog拍摄",
    "everyday": "日常使用",
    "bedroom": "卧室",
    "road trips": "自驾出行",
    "family": "家庭",
    "pets": "宠物",
    "home security": "家庭安防",
    "elderly care": "看护老人",
    "kids": "儿童",
    "hiking": "徒步",
    "cooking": "烹饪",
    "coffee": "咖啡时光",
    "breakfast": "早餐",
    "tea": "泡茶",
    "power outages": "应急备电",
    "fishing": "钓鱼",
    "yoga": "瑜伽",
    "gaming": "游戏",
    "photography": "摄影",
    "online classes": "网课",
}
"""Usage scenarios, English key to Chinese."""


class _Entry(NamedTuple):
    sku: str
    name_en: str
    name_zh: str
    category: str
    price: float
    stock: int
    features: tuple[tuple[str, str], ...]
    """(English, Chinese) pairs."""
    scenarios: tuple[str, ...]
    """Keys of ``_SCENARIOS``."""


# fmt: off
_CATALOG: tuple[_Entry, ...] = (
    # Audio (Lumo)
    _Entry("AUD-001", "Lumo Air Pro ANC Earbuds", "Lumo Air Pro 主动降噪真无线耳机", "audio", 899, 320,
           (("active noise cancelling", "主动降噪"), ("30-hour battery with case", "含充电盒30小时续航"),
            ("wireless charging", "无线充电")), ("commuting", "travel", "gift")),
    _Entry("AUD-002", "Lumo Run Sport Earbuds", "Lumo Run 跑步运动耳机", "audio", 399, 540,
           (("IPX5 sweat resistant", "IPX5防汗防水"), ("secure ear hooks", "稳固耳挂"),
            ("10-hour battery", "10小时续航")), ("running", "fitness")),
    _Entry("AUD-003", "Lumo Studio Over-Ear ANC Headphones", "Lumo Studio 头戴式降噪耳机", "audio", 1599, 85,
           (("active noise cancelling", "主动降噪"), ("hi-res audio", "高解析音质"), ("40-hour battery", "40小时续航"),
            ("foldable design", "可折叠设计")), ("travel", "home office", "music")),
    _Entry("AUD-004", "Lumo Buds Lite", "Lumo Buds Lite 入门真无线耳机", "audio", 199, 0,
           (("8-hour battery", "8小时续航"), ("touch controls", "触控操作")), ("study", "commuting")),
    _Entry("AUD-005", "Lumo Boom Portable Speaker", "Lumo Boom 便携蓝牙音箱", "audio", 499, 210,
           (("IP67 waterproof", "IP67防水"), ("20-hour battery", "20小时续航"), ("stereo pairing", "双箱立体声配对")),
           ("camping", "parties", "music")),
    _Entry("AUD-006", "Lumo 2.1 Soundbar", "Lumo 2.1声道回音壁", "audio", 1299, 60,
           (("virtual surround sound", "虚拟环绕声"), ("wireless subwoofer", "无线低音炮"),
            ("HDMI eARC", "HDMI eARC接口")), ("home cinema", "family")),
    _Entry("AUD-007", "Lumo Sleep Noise-Masking Earbuds", "Lumo Sleep 睡眠耳塞", "audio", 599, 0,
           (("ultra-small fit for side sleepers", "超小巧侧睡无压"), ("soothing sound library", "助眠白噪音库"),
            ("10-hour battery", "10小时续航")), ("sleep", "travel")),
    _Entry("AUD-008", "Lumo Open Bone Conduction Headphones", "Lumo Open 骨传导运动耳机", "audio", 699, 150,
           (("open-ear design", "开放式不入耳"), ("IP68 waterproof", "IP68防水"),
            ("32 GB built-in storage", "内置32GB存储")), ("running", "swimming", "cycling")),
    # Phones & accessories (Kefu)
    _Entry("PHN-001", "Kefu 65W GaN Charger", "Kefu 65W 氮化镓快充充电器", "phones", 169, 900,
           (("three ports (2C1A)", "三口输出 2C1A"), ("foldable plug", "折叠插脚"),
            ("charges laptops", "可为笔记本充电")), ("travel", "business trips")),
    _Entry("PHN-002", "Kefu MagSnap Power Bank 10000mAh", "Kefu 磁吸无线充电宝 10000mAh", "phones", 249, 430,
           (("magnetic wireless charging", "磁吸无线充电"), ("20W fast charging", "20W快充"),
            ("pocket-sized", "小巧便携")), ("commuting", "travel")),
    _Entry("PHN-003", "Kefu Armor Phone Case", "Kefu 军规防摔手机壳", "phones", 79, 1500,
           (("3 m drop protection", "3米防摔"), ("raised camera lip", "镜头加高保护")), ("everyday",)),
    _Entry("PHN-004", "Kefu 3-in-1 Wireless Charging Stand", "Kefu 三合一无线充电支架", "phones", 299, 0,
           (("charges phone, watch and earbuds", "手机手表耳机同时充"), ("15W fast wireless charging", "15W无线快充")),
           ("home office", "bedroom", "gift")),
    _Entry("PHN-005", "Kefu S3 Phone Gimbal", "Kefu S3 手机云台稳定器", "phones", 599, 120,
           (("3-axis stabilization", "三轴防抖"), ("face tracking", "人脸追踪"), ("foldable", "折叠收纳")),
           ("vlogging", "travel")),
    _Entry("PHN-006", "Kefu Tempered Glass Screen Protector (2-pack)", "Kefu 钢化玻璃膜 两片装", "phones", 49, 2600,
           (("9H hardness", "9H硬度"), ("anti-fingerprint coating", "防指纹涂层"),
            ("easy-install frame", "贴膜神器一贴即好")), ("everyday",)),
    _Entry("PHN-007", "Kefu Wireless Charging Car Mount", "Kefu 车载无线充电支架", "phones", 199, 340,
           (("auto-clamping arms", "自动夹紧"), ("15W wireless charging", "15W无线充电"),
            ("air-vent mount", "出风口安装")), ("road trips",)),
    _Entry("PHN-008", "Kefu Braided USB-C Cable 2 m", "Kefu 编织快充数据线 2米", "phones", 39, 3100,
           (("100W fast charging", "100W快充"), ("10,000-bend tested", "万次弯折测试")), ("home office", "travel")),
    # Smart home (Nestia)
    _Entry("HOM-001", "Nestia X1 Robot Vacuum and Mop", "Nestia X1 扫拖一体机器人", "smart_home", 2499, 75,
           (("laser navigation", "激光导航"), ("auto-empty dock", "自动集尘"), ("vacuums and mops", "扫拖一体"),
            ("app control", "APP远程控制")), ("family", "pets")),
    _Entry("HOM-002", "Nestia Smart Plug (4-pack)", "Nestia 智能插座 4只装", "smart_home", 129, 800,
           (("voice assistant support", "支持语音助手"), ("energy monitoring", "电量统计"), ("schedules", "定时开关")),
           ("family", "bedroom")),
    _Entry("HOM-003", "Nestia 2K Indoor Security Camera", "Nestia 2K 家用监控摄像头", "smart_home", 229, 460,
           (("2K resolution", "2K高清"), ("night vision", "红外夜视"), ("two-way audio", "双向通话"),
            ("motion alerts", "移动侦测提醒")), ("home security", "pets", "elderly care")),
    _Entry("HOM-004", "Nestia Fingerprint Smart Door Lock", "Nestia 指纹智能门锁", "smart_home", 1699, 40,
           (("fingerprint unlock", "指纹解锁"), ("temporary passcodes", "临时密码"), ("anti-tamper alarm", "防撬报警")),
           ("home security", "family")),
    _Entry("HOM-005", "Nestia 400 Air Purifier", "Nestia 400 空气净化器", "smart_home", 1299, 0,
           (("H13 HEPA filter", "H13级HEPA滤网"), ("22 dB sleep mode", "22分贝静音睡眠模式"),
            ("PM2.5 display", "PM2.5实时显示")), ("sleep", "family", "pets")),
    _Entry("HOM-006", "Nestia Smart Color Bulb", "Nestia 智能彩光灯泡", "smart_home", 69, 1200,
           (("16 million colors", "1600万色"), ("voice control", "语音控制")), ("bedroom", "parties")),
    _Entry("HOM-007", "Nestia Mini Smart Speaker", "Nestia Mini 智能音箱", "smart_home", 199, 520,
           (("voice assistant", "语音助手"), ("smart home hub", "智能家居中控"), ("alarms and timers", "闹钟与计时")),
           ("family", "cooking")),
    _Entry("HOM-008", "Nestia Video Doorbell", "Nestia 可视门铃", "smart_home", 399, 140,
           (("1080p video", "1080P高清画面"), ("6-month battery", "电池续航6个月"),
            ("parcel detection", "快递包裹识别")), ("home security",)),
    # Wearables (Pulsa)
    _Entry("WEA-001", "Pulsa Watch 3", "Pulsa Watch 3 智能手表", "wearables", 1299, 260,
           (("AMOLED display", "AMOLED屏幕"), ("blood oxygen monitoring", "血氧监测"), ("14-day battery", "14天续航"),
            ("NFC payments", "NFC支付")), ("fitness", "everyday", "gift")),
    _Entry("WEA-002", "Pulsa Run GPS Running Watch", "Pulsa Run GPS 跑步手表", "wearables", 1599, 90,
           (("dual-band GPS", "双频GPS"), ("training load analysis", "训练负荷分析"),
            ("5ATM water resistance", "5ATM防水")), ("running", "hiking", "cycling")),
    _Entry("WEA-003", "Pulsa Band 7", "Pulsa Band 7 智能手环", "wearables", 249, 1100,
           (("sleep tracking", "睡眠监测"), ("heart-rate monitoring", "心率监测"), ("16-day battery", "16天续航")),
           ("fitness", "sleep", "study")),
    _Entry("WEA-004", "Pulsa Kids 4G Watch", "Pulsa 儿童电话手表", "wearables", 699, 180,
           (("4G video calls", "4G视频通话"), ("GPS location", "GPS定位"), ("SOS button", "一键求救")),
           ("kids", "gift")),
    _Entry("WEA-005", "Pulsa Smart Ring", "Pulsa 智能戒指", "wearables", 1999, 0,
           (("sleep staging", "睡眠分期"), ("skin temperature sensing", "体温监测"), ("titanium shell", "钛合金外壳")),
           ("sleep", "gift")),
    _Entry("WEA-006", "Pulsa Vista Audio Glasses", "Pulsa Vista 音频眼镜", "wearables", 1099, 35,
           (("open-ear speakers", "开放式扬声器"), ("blue-light filtering lenses", "防蓝光镜片"),
            ("hands-free calls", "免提通话")), ("commuting", "home office")),
    _Entry("WEA-007", "Pulsa Senior Health Watch", "Pulsa 长辈健康手表", "wearables", 899, 70,
           (("fall detection", "跌倒检测"), ("heart-rate alerts", "心率异常提醒"),
            ("large-font display", "大字体显示")), ("elderly care", "gift")),
    # Kitchen appliances (Cuisino)
    _Entry("KIT-001", "Cuisino 5.5 L Air Fryer", "Cuisino 5.5升空气炸锅", "kitchen", 399, 650,
           (("oil-free frying", "无油空气炸"), ("viewing window", "可视窗口"), ("8 presets", "8种预设菜单")),
           ("cooking", "family")),
    _Entry("KIT-002", "Cuisino 4 L Smart Rice Cooker", "Cuisino 4升智能电饭煲", "kitchen", 499, 300,
           (("IH heating", "IH电磁加热"), ("24-hour delay start", "24小时预约"), ("low-sugar rice mode", "低糖饭模式")),
           ("family", "cooking")),
    _Entry("KIT-003", "Cuisino Espresso Machine", "Cuisino 半自动意式咖啡机", "kitchen", 1899, 45,
           (("20-bar pump", "20Bar泵压"), ("steam wand", "蒸汽打奶棒"), ("PID temperature control", "PID精准控温")),
           ("coffee", "home office", "gift")),
    _Entry("KIT-004", "Cuisino Portable Blender", "Cuisino 便携榨汁杯", "kitchen", 149, 980,
           (("USB-C rechargeable", "USB-C充电"), ("350 ml cup", "350毫升杯体"),
            ("6 stainless blades", "6叶不锈钢刀头")), ("fitness", "travel", "breakfast")),
    _Entry("KIT-005", "Cuisino Temperature-Control Kettle", "Cuisino 恒温电热水壶", "kitchen", 199, 720,
           (("precise temperature settings", "精准控温"), ("12-hour keep-warm", "12小时保温"),
            ("1.7 L capacity", "1.7升容量")), ("tea", "family")),
    _Entry("KIT-006", "Cuisino Soy Milk Maker", "Cuisino 破壁豆浆机", "kitchen", 599, 0,
           (("high-speed blending", "高速破壁"), ("self-cleaning", "自动清洗"), ("overnight timer", "预约定时")),
           ("breakfast", "family")),
    _Entry("KIT-007", "Cuisino Sous Vide Cooker", "Cuisino 低温慢煮棒", "kitchen", 699, 55,
           (("±0.1 °C accuracy", "±0.1℃精准控温"), ("app recipes", "APP食谱")), ("cooking", "fitness")),
    _Entry("KIT-008", "Cuisino 10 L Mini Fridge", "Cuisino 10升迷你冰箱", "kitchen", 449, 110,
           (("cooling and warming", "冷暖两用"), ("28 dB quiet", "28分贝静音")), ("bedroom", "road trips")),
    # Outdoor & sports (Trailo)
    _Entry("OUT-001", "Trailo 2-Person Instant Tent", "Trailo 双人速开帐篷", "outdoor", 599, 140,
           (("60-second setup", "60秒速开"), ("3000 mm waterproof", "3000mm防水"), ("2.1 kg", "2.1公斤")),
           ("camping", "hiking")),
    _Entry("OUT-002", "Trailo 600 Portable Power Station", "Trailo 600W 户外移动电源", "outdoor", 2999, 30,
           (("600 W output", "600W输出"), ("512 Wh LiFePO4 battery", "512Wh磷酸铁锂电池"),
            ("solar charging", "太阳能充电")), ("camping", "power outages", "road trips")),
    _Entry("OUT-003", "Trailo Carbon Trekking Poles (pair)", "Trailo 碳纤维登山杖 一对装", "outdoor", 259, 400,
           (("carbon fiber", "碳纤维"), ("185 g per pole", "单支185克"), ("flip locks", "快锁调节")), ("hiking",)),
    _Entry("OUT-004", "Trailo 750 ml Insulated Bottle", "Trailo 750ml 保温杯", "outdoor", 129, 1400,
           (("cold for 24 hours", "保冷24小时"), ("hot for 12 hours", "保温12小时"), ("leak-proof lid", "防漏杯盖")),
           ("hiking", "commuting", "fitness")),
    _Entry("OUT-005", "Trailo Smart Radar Bike Light", "Trailo 智能雷达自行车尾灯", "outdoor", 189, 0,
           (("auto brake light", "智能刹车灯"), ("rear radar alerts", "后方来车雷达提醒"),
            ("USB-C charging", "USB-C充电")), ("cycling",)),
    _Entry("OUT-006", "Trailo Folding Camp Chair", "Trailo 折叠露营椅", "outdoor", 239, 260,
           (("120 kg load", "承重120公斤"), ("1.1 kg ultralight", "1.1公斤超轻")), ("camping", "fishing")),
    _Entry("OUT-007", "Trailo 6 mm Yoga Mat", "Trailo 6mm 瑜伽垫", "outdoor", 159, 700,
           (("non-slip TPE", "TPE防滑"), ("alignment lines", "体位线")), ("yoga", "fitness")),
    _Entry("OUT-008", "Trailo Running Belt", "Trailo 跑步腰包", "outdoor", 89, 850,
           (("fits phones up to 6.9 in", "可放6.9英寸手机"), ("bounce-free", "跑动不晃"),
            ("reflective strips", "反光条")), ("running",)),
    # Computing (Kefu)
    _Entry("CMP-001", "Kefu Book 14 Laptop", "Kefu Book 14 轻薄笔记本", "computing", 5999, 60,
           (("14-inch 2.8K display", "14英寸2.8K屏"), ("1.2 kg", "1.2公斤"),
            ("16 GB RAM + 1 TB SSD", "16GB内存+1TB固态"), ("12-hour battery", "12小时续航")),
           ("home office", "business trips", "study")),
    _Entry("CMP-002", "Kefu Pad 11 Tablet", "Kefu Pad 11 平板电脑", "computing", 2299, 150,
           (("11-inch 120 Hz display", "11英寸120Hz屏"), ("stylus support", "支持手写笔"),
            ("quad speakers", "四扬声器")), ("study", "travel", "online classes")),
    _Entry("CMP-003", "Kefu K87 Mechanical Keyboard", "Kefu K87 机械键盘", "computing", 399, 330,
           (("hot-swappable switches", "热插拔轴体"), ("tri-mode wireless", "三模连接"), ("RGB backlight", "RGB背光")),
           ("gaming", "home office")),
    _Entry("CMP-004", "Kefu Ergo Wireless Mouse", "Kefu 人体工学无线鼠标", "computing", 199, 610,
           (("vertical ergonomic design", "垂直人体工学设计"), ("silent clicks", "静音按键"),
            ("multi-device switching", "多设备切换")), ("home office",)),
    _Entry("CMP-005", "Kefu 27-inch 4K Monitor", "Kefu 27英寸4K显示器", "computing", 1999, 0,
           (("4K IPS panel", "4K IPS面板"), ("USB-C 65 W charging", "USB-C 65W反向充电"),
            ("height-adjustable stand", "升降支架")), ("home office", "photography")),
    _Entry("CMP-006", "Kefu 1080p Webcam", "Kefu 1080P 网络摄像头", "computing", 249, 280,
           (("1080p 60 fps", "1080P 60帧"), ("dual microphones", "双麦克风"), ("auto light correction", "自动补光")),
           ("home office", "online classes")),
    _Entry("CMP-007", "Kefu 1 TB Portable SSD", "Kefu 1TB 移动固态硬盘", "computing", 599, 420,
           (("1050 MB/s transfers", "1050MB/s高速传输"), ("drop resistant", "抗摔"), ("pocket-sized", "小巧便携")),
           ("photography", "business trips")),
    _Entry("CMP-008", "Kefu 7-in-1 USB-C Hub", "Kefu 七合一 USB-C 扩展坞", "computing", 229, 540,
           (("4K HDMI output", "4K HDMI输出"), ("100 W pass-through charging", "100W PD充电"),
            ("SD card reader", "SD读卡器")), ("home office", "business trips")),
)
_PRICES: dict[str, float] = {entry.sku: float(entry.price) for entry in _CATALOG}

# ------------------------------------------------------------------------------------------- customers

_ZH_SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"), ("赵", "zhao"),
    ("黄", "huang"), ("周", "zhou"), ("吴", "wu"), ("徐", "xu"), ("孙", "sun"), ("胡", "hu"), ("朱", "zhu"),
    ("高", "gao"), ("林", "lin"), ("何", "he"), ("郭", "guo"), ("马", "ma"), ("罗", "luo"), ("梁", "liang"),
    ("宋", "song"), ("郑", "zheng"), ("谢", "xie"), ("韩", "han"), ("唐", "tang"), ("冯", "feng"), ("许", "xu"),
)
_ZH_GIVEN: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("伟", "wei"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("磊", "lei"), ("洋", "yang"),
    ("艳", "yan"), ("勇", "yong"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
    ("秀兰", "xiulan"), ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂英", "guiying"), ("晓东", "xiaodong"),
    ("子涵", "zihan"), ("浩然", "haoran"), ("雨桐", "yutong"), ("梓萱", "zixuan"), ("宇轩", "yuxuan"),
    ("思远", "siyuan"), ("嘉怡", "jiayi"), ("俊杰", "junjie"), ("欣怡", "xinyi"), ("文博", "wenbo"),
    ("佳琪", "jiaqi"), ("一鸣", "yiming"), ("婷婷", "tingting"), ("志强", "zhiqiang"), ("丽华", "lihua"),
    ("建国", "jianguo"), ("晨曦", "chenxi"), ("若汐", "ruoxi"), ("天佑", "tianyou"), ("美玲", "meiling"),
)
_ZH_CITIES: tuple[str, ...] = (
    "上海", "北京", "广州", "深圳", "杭州", "成都", "南京", "武汉", "西安", "苏州", "重庆", "天津", "长沙", "厦门",
    "青岛", "郑州", "合肥", "宁波", "昆明", "沈阳",
)
_ZH_MOBILE_PREFIXES: tuple[str, ...] = (
    "134", "135", "136", "137", "138", "139", "150", "151", "152", "158", "159", "177", "186", "187", "188", "189",
    "199",
)
_EN_FIRST: tuple[str, ...] = (
    "Emma", "Olivia", "Amelia", "Sophie", "Grace", "Chloe", "Lucy", "Hannah", "Ella", "Isla", "Mia", "Zoe", "Ava",
    "Charlotte", "Ruby", "Jack", "Oliver", "Harry", "George", "Noah", "Leo", "James", "Thomas", "Daniel", "Samuel",
    "Lucas", "Ethan", "Henry", "William", "Oscar", "Liam", "Ryan", "Nathan", "Adam", "Sarah", "Laura", "Megan",
    "David", "Michael", "Rachel",
)
_EN_LAST: tuple[str, ...] = (
    "Clark", "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Harris", "Lewis",
    "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "King", "Baker", "Turner", "Parker", "Collins",
    "Edwards", "Bennett", "Hughes", "Foster", "Murphy", "Kelly", "Mitchell",
)
# (city, phone style, ships within mainland China)
_EN_CITIES: tuple[tuple[str, str, bool], ...] = (
    ("Shanghai", "any", True), ("Beijing", "any", True), ("Shenzhen", "any", True), ("Guangzhou", "any", True),
    ("Hangzhou", "any", True), ("Suzhou", "any", True), ("Hong Kong", "any", False), ("Singapore", "any", False),
    ("London", "uk", False), ("Manchester", "uk", False), ("Edinburgh", "uk", False), ("New York", "212", False),
    ("San Francisco", "415", False), ("Seattle", "206", False), ("Toronto", "416", False), ("Sydney", "any", False),
)
_US_AREA_CODES: tuple[str, ...] = ("212", "415", "206", "312", "617")
_OVERSEAS_CITIES = frozenset(city for city, _style, mainland in _EN_CITIES if not mainland)


class _Customer(NamedTuple):
    id: str
    name: str
    email: str
    phone: str
    tier: Tier
    lang: Lang
    city: str
    created_at: datetime


_DEMO_CUSTOMERS: tuple[_Customer, ...] = (
    _Customer(DEMO_CUSTOMER_ZH, "王芳", "fang.wang@example.cn", "13812345678", Tier.VIP, Lang.ZH, "上海",
              datetime(2023, 3, 14, 10, 25)),
    _Customer(DEMO_CUSTOMER_EN, "Emma Clark", "emma.clark@example.com", "+44 7700 900123", Tier.GOLD, Lang.EN,
              "Shanghai", datetime(2023, 9, 2, 19, 40)),
)
# fmt: on

# How many of the generated customers (C0003 onwards) get each tier.
_GENERATED_TIERS: tuple[tuple[Tier, int], ...] = ((Tier.VIP, 18), (Tier.GOLD, 26), (Tier.SILVER, 46))

# ---------------------------------------------------------------------------------------------- orders

# Hand-written orders of the demo customers: (status, age in days, [(sku, quantity), ...]).
_DEMO_ORDERS: dict[str, tuple[tuple[OrderStatus, float, tuple[tuple[str, int], ...]], ...]] = {
    DEMO_CUSTOMER_ZH: (
        (OrderStatus.DELIVERED, 412.3, (("KIT-002", 1), ("KIT-005", 1))),
        (OrderStatus.DELIVERED, 205.6, (("WEA-001", 1),)),
        (OrderStatus.CANCELLED, 96.1, (("HOM-005", 1),)),
        (OrderStatus.DELIVERED, 48.4, (("HOM-001", 1), ("HOM-002", 1))),
        (OrderStatus.RETURN_REQUESTED, 16.2, (("AUD-003", 1),)),
        (OrderStatus.SHIPPED, 0.9, (("AUD-001", 1), ("PHN-002", 1))),
        (OrderStatus.PAID, 0.6, (("OUT-002", 1), ("OUT-006", 2))),
    ),
    DEMO_CUSTOMER_EN: (
        (OrderStatus.DELIVERED, 301.8, (("CMP-001", 1), ("CMP-008", 1))),
        (OrderStatus.REFUNDED, 133.5, (("AUD-005", 1),)),
        (OrderStatus.DELIVERED, 61.2, (("KIT-003", 1),)),
        (OrderStatus.DELIVERED, 22.9, (("WEA-002", 1), ("OUT-008", 1))),
        (OrderStatus.SHIPPED, 0.8, (("AUD-002", 1), ("OUT-004", 2))),
        (OrderStatus.PENDING_PAYMENT, 0.3, (("PHN-001", 1), ("PHN-008", 2))),
    ),
}

_DOMESTIC_CARRIERS: tuple[tuple[str, int], ...] = (("SF Express", 40), ("JD Logistics", 30), ("ZTO", 20), ("EMS", 10))
_OVERSEAS_CARRIERS: tuple[tuple[str, int], ...] = (("DHL", 70), ("EMS", 30))
_TRANSIT_DAYS = {"SF Express": (1, 3), "JD Logistics": (1, 3), "ZTO": (2, 5), "EMS": (2, 6), "DHL": (3, 8)}
_ITEMS_PER_ORDER = ((1, 55), (2, 28), (3, 12), (4, 5))
_CHEAP = 200.0
"""Products under this price are sometimes bought two or three at a time."""

# --------------------------------------------------------------------------------------------- tickets

_RETURN_REASONS: tuple[tuple[str, str], ...] = (
    ("not what I expected", "与预期不符"),
    ("changed my mind", "不想要了"),
    ("stopped working after a week", "用了一周出现故障"),
    ("wrong colour received", "收到的颜色不对"),
)
_COMPLAINTS: tuple[tuple[str, str], ...] = (
    ("Order {order} arrived with a damaged box and a scratched item", "订单{order}外包装破损，商品有划痕"),
    ("Order {order} is missing an item", "订单{order}少发了商品"),
    ("The courier was rude when delivering order {order}", "订单{order}配送员态度很差"),
)
_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("Please issue a VAT invoice for order {order}", "订单{order}需要开具增值税专用发票"),
    ("How do I claim the warranty for order {order}?", "订单{order}的商品如何申请保修？"),
    ("Can I change the delivery address of order {order}?", "订单{order}能否修改收货地址？"),
)
_TICKET_PLAN: tuple[tuple[TicketKind, int], ...] = (
    (TicketKind.RETURN, 8),
    (TicketKind.COMPLAINT, 6),
    (TicketKind.GENERAL, 6),
)


def seed(engine: Engine, *, reset: bool = False, seed_value: int = 20261122) -> SeedSummary:
    """Fill the database behind ``engine`` with the demo shop, unless it is already there.

    Args:
        engine: Where to write; missing tables are created.
        reset: Drop and recreate every table first, then seed.
        seed_value: Seed of the ``random.Random`` that generates customers, orders and tickets; the
            service history (``core.history``) draws from its own ``random.Random(seed_value + 1)``.

    Returns:
        The row counts, and whether this call wrote them.

    """
    if reset:
        Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if not reset and session.scalar(select(func.count()).select_from(ProductRow)):
            return _summary(session, created=False)
    rng = random.Random(seed_value)
    customers = _customers(rng)
    orders, items = _orders(rng, customers)
    tickets = _tickets(rng, customers, orders)
    # The service history has a generator of its own, so adding it changed none of the rows above.
    generated = [HistoryCustomer(c.id, c.lang.value, c.created_at) for c in customers if c.id not in _DEMO_ORDERS]
    history = service_history(random.Random(seed_value + 1), generated, orders, now=REFERENCE_DATE)
    with Session(engine) as session, session.begin():
        session.execute(insert(ProductRow), _product_rows())
        session.execute(
            insert(CustomerRow),
            [c._asdict() | {"tier": c.tier.value, "lang": c.lang.value} for c in customers],
        )
        session.execute(insert(OrderRow), orders)
        session.execute(insert(OrderItemRow), items)
        session.execute(insert(TicketRow), tickets)
        if history.conversations:
            session.execute(insert(ConversationLogRow), history.conversations)
        if history.turns:
            session.execute(insert(TurnAuditRow), history.turns)
        if engine.dialect.name == "postgresql":
            # Rows inserted with explicit ids do not advance PostgreSQL's sequences: move them past.
            for table in (OrderItemRow.__tablename__, TicketRow.__tablename__):
                session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                        f"FROM {table}"
                    )
                )
    with Session(engine) as session:
        return _summary(session, created=True)


def _summary(session: Session, *, created: bool) -> SeedSummary:
    def count(table: type[Base]) -> int:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)

    return SeedSummary(
        products=count(ProductRow),
        customers=count(CustomerRow),
        orders=count(OrderRow),
        order_items=count(OrderItemRow),
        tickets=count(TicketRow),
        conversations=count(ConversationLogRow),
        created=created,
    )


def _product_rows() -> list[dict[str, Any]]:
    return [
        {
            "sku": entry.sku,
            "name_en": entry.name_en,
            "name_zh": entry.name_zh,
            "category": entry.category,
            "price": float(entry.price),
            "stock": entry.stock,
            "features_en": [en for en, _zh in entry.features],
            "features_zh": [zh for _en, zh in entry.features],
            "scenarios_en": list(entry.scenarios),
            "scenarios_zh": [_SCENARIOS[key] for key in entry.scenarios],
        }
        for entry in _CATALOG
    ]


def _moment(rng: random.Random, min_days: float, max_days: float, *, not_before: datetime | None = None) -> datetime:
    """Pick a whole-second moment between ``max_days`` and ``min_days`` before the reference date."""
    earliest = REFERENCE_DATE - timedelta(days=max_days)
    if not_before is not None and not_before > earliest:
        earliest = not_before
    latest = REFERENCE_DATE - timedelta(days=min_days)
    span = max(int((latest - earliest).total_seconds()), 0)
    return earliest + timedelta(seconds=rng.randint(0, span))


def _customers(rng: random.Random) -> list[_Customer]:
    generated = _CUSTOMER_COUNT - len(_DEMO_CUSTOMERS)
    tiers = [tier for tier, n in _GENERATED_TIERS for _ in range(n)]
    tiers += [Tier.STANDARD] * (generated - len(tiers))
    rng.shuffle(tiers)
    names = {c.name for c in _DEMO_CUSTOMERS}
    emails = {c.email for c in _DEMO_CUSTOMERS}
    customers = list(_DEMO_CUSTOMERS)
    for index, tier in enumerate(tiers, start=len(_DEMO_CUSTOMERS) + 1):
        lang = Lang.ZH if index % 2 else Lang.EN
        while True:
            if lang is Lang.ZH:
                (surname, surname_py), (given, given_py) = rng.choice(_ZH_SURNAMES), rng.choice(_ZH_GIVEN)
                name, local, domain = surname + given, f"{given_py}.{surname_py}", "example.cn"
            else:
                first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
                name, local, domain = f"{first} {last}", f"{first}.{last}".lower(), "example.com"
            if name not in names:
                break
        names.add(name)
        email, suffix = f"{local}@{domain}", 1
        while email in emails:
            suffix += 1
            email = f"{local}{suffix}@{domain}"
        emails.add(email)
        if lang is Lang.ZH:
            city = rng.choice(_ZH_CITIES)
            phone = rng.choice(_ZH_MOBILE_PREFIXES) + f"{rng.randint(0, 99_999_999):08d}"
        else:
            city, style, _mainland = rng.choice(_EN_CITIES)
            if style == "any":
                style = rng.choice(("uk", *_US_AREA_CODES))
            if style == "uk":
                phone = f"+44 7700 900{rng.randint(0, 999):03d}"
            else:
                phone = f"+1 {style} 555 01{rng.randint(0, 99):02d}"
        created_at = _moment(rng, 35.0, (REFERENCE_DATE - datetime(2023, 1, 1)).days)
        customers.append(_Customer(f"C{index:04d}", name, email, phone, tier, lang, city, created_at))
    return customers


def _orders(rng: random.Random, customers: list[_Customer]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Generate orders and their lines, with ids in order of creation."""
    drafts: list[tuple[datetime, _Customer, OrderStatus, list[tuple[str, int]]]] = []
    by_id = {c.id: c for c in customers}
    for customer_id, planned in _DEMO_ORDERS.items():
        customer = by_id[customer_id]
        for status, age, planned_lines in planned:
            created_at = (REFERENCE_DATE - timedelta(days=age)).replace(second=0, microsecond=0)
            drafts.append((created_at, customer, status, list(planned_lines)))
    buyers = [c for c in customers if c.id not in _DEMO_ORDERS]
    weights = [_TIER_ORDER_WEIGHT[c.tier] for c in buyers]
    statuses = [status for status, n in _RANDOM_ORDER_STATUSES for _ in range(n)]
    rng.shuffle(statuses)
    skus = [entry.sku for entry in _CATALOG]
    sizes, size_weights = zip(*_ITEMS_PER_ORDER, strict=True)
    for status, customer in zip(statuses, rng.choices(buyers, weights, k=len(statuses)), strict=True):
        min_age, max_age = _STATUS_AGE_DAYS[status]
        created_at = _moment(rng, min_age, max_age, not_before=customer.created_at + timedelta(hours=1))
        picked = rng.sample(skus, rng.choices(sizes, size_weights)[0])
        lines = [(sku, rng.choice((1, 1, 1, 2, 3)) if _PRICES[sku] < _CHEAP else 1) for sku in picked]
        drafts.append((created_at, customer, status, lines))
    drafts.sort(key=lambda draft: (draft[0], draft[1].id))

    orders: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for number, (created_at, customer, status, lines) in enumerate(drafts, start=100_001):
        order_id = f"KF{number}"
        order: dict[str, Any] = {
            "id": order_id,
            "customer_id": customer.id,
            "status": status.value,
            "created_at": created_at,
            "total": round(sum(_PRICES[sku] * quantity for sku, quantity in lines), 2),
        }
        order.update(_fulfilment(rng, status, created_at, overseas=customer.city in _OVERSEAS_CITIES))
        orders.append(order)
        for sku, quantity in lines:
            items.append(
                {
                    "id": len(items) + 1,
                    "order_id": order_id,
                    "sku": sku,
                    "quantity": quantity,
                    "unit_price": _PRICES[sku],
                }
            )
    return orders, items


def _fulfilment(rng: random.Random, status: OrderStatus, created_at: datetime, *, overseas: bool) -> dict[str, Any]:
    """Shipping facts and the last-update time of an order in ``status``."""

    def later(start: datetime, min_hours: float, max_hours: float) -> datetime:
        """Pick a moment ``min_hours`` to ``max_hours`` after ``start``, but not after the reference date."""
        latest = min(start + timedelta(hours=max_hours), REFERENCE_DATE)
        earliest = min(start + timedelta(hours=min_hours), latest)
        return earliest + timedelta(seconds=rng.randint(0, max(int((latest - earliest).total_seconds()), 0)))

    if status in _UNSHIPPED:
        updated_at = {
            OrderStatus.PENDING_PAYMENT: created_at,
            OrderStatus.PAID: later(created_at, 0.01, 0.3),
            OrderStatus.CANCELLED: later(created_at, 0.1, 30.0),
        }[status]
        return {"updated_at": updated_at, "carrier": None, "tracking_number": None, "estimated_delivery": None}

    carriers, carrier_weights = zip(*(_OVERSEAS_CARRIERS if overseas else _DOMESTIC_CARRIERS), strict=True)
    carrier: str = rng.choices(carriers, carrier_weights)[0]
    shipped_at = later(created_at, 4.0, 30.0)
    fastest, slowest = _TRANSIT_DAYS[carrier]
    estimated = (shipped_at + timedelta(days=rng.randint(fastest, slowest))).replace(
        hour=18, minute=0, second=0, microsecond=0
    )
    delivered_at = later(shipped_at, fastest * 20.0, slowest * 26.0)
    updated_at = {
        OrderStatus.SHIPPED: shipped_at,
        OrderStatus.DELIVERED: delivered_at,
        OrderStatus.RETURN_REQUESTED: later(delivered_at, 12.0, 7 * 24.0),
        OrderStatus.RETURNED: later(delivered_at, 3 * 24.0, 12 * 24.0),
        OrderStatus.REFUNDED: later(delivered_at, 4 * 24.0, 14 * 24.0),
    }[status]
    return {
        "updated_at": updated_at,
        "carrier": carrier,
        "tracking_number": _tracking_number(rng, carrier),
        "estimated_delivery": estimated,
    }


def _tracking_number(rng: random.Random, carrier: str) -> str:
    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    if carrier == "SF Express":
        return "SF" + digits(13)
    if carrier == "JD Logistics":
        return "JDVA" + digits(11)
    if carrier == "ZTO":
        return "7" + digits(11)
    if carrier == "EMS":
        return "E" + rng.choice("ABCDEJKLMR") + digits(9) + "CN"
    return digits(10)  # DHL Express waybill


def _tickets(rng: random.Random, customers: list[_Customer], orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open tickets about generated customers' orders; the demo customers start with none."""
    by_id = {c.id: c for c in customers}
    eligible = {
        TicketKind.RETURN: (OrderStatus.RETURN_REQUESTED.value,),
        TicketKind.COMPLAINT: (OrderStatus.DELIVERED.value, OrderStatus.SHIPPED.value),
        TicketKind.GENERAL: (OrderStatus.PAID.value, OrderStatus.SHIPPED.value, OrderStatus.DELIVERED.value),
    }
    since = REFERENCE_DATE - timedelta(days=45)
    recent = [o for o in orders if o["customer_id"] not in _DEMO_ORDERS and o["created_at"] > since]
    taken: set[str] = set()
    tickets: list[dict[str, Any]] = []
    for kind, count in _TICKET_PLAN:
        pool = [o for o in recent if o["status"] in eligible[kind] and o["customer_id"] not in taken]
        for order in rng.sample(pool, len(pool)):
            customer = by_id[order["customer_id"]]
            if count == 0:
                break
            if customer.id in taken:
                continue
            count -= 1
            taken.add(customer.id)
            tickets.append(
                {
                    "id": len(tickets) + 1,
                    "customer_id": customer.id,
                    "conversation_id": None,
                    "kind": kind.value,
                    "status": TicketStatus.OPEN.value,
                    "priority": _priority(kind, customer.tier),
                    "subject": _subject(rng, kind, customer.lang, order["id"]),
                    "created_at": _moment(rng, 0.0, 5.0, not_before=order["updated_at"]),
                }
            )
    return tickets


def _priority(kind: TicketKind, tier: Tier) -> int:
    """1 is the most urgent: complaints before other tickets, VIPs before everyone else."""
    return (1 if kind is TicketKind.COMPLAINT else 2) + (0 if tier is Tier.VIP else 1)


def _subject(rng: random.Random, kind: TicketKind, lang: Lang, order_id: str) -> str:
    if kind is TicketKind.RETURN:
        en, zh = rng.choice(_RETURN_REASONS)
        return f"Return request for order {order_id}: {en}" if lang is Lang.EN else f"订单{order_id}申请退货：{zh}"
    en, zh = rng.choice(_COMPLAINTS if kind is TicketKind.COMPLAINT else _QUESTIONS)
    return (en if lang is Lang.EN else zh).format(order=order_id)
